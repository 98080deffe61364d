"""The reporting layer: the study's tables (CSV, Markdown, LaTeX), its figures (PNG and PDF) and the generated results
page of a finished run."""
