"""The analysis layer: the study's statistics over the scores (``stats``: gap closed, winners, sign tests;
``bootstrap``: intervals), the study as its paper reads it (``paper_view``), and the papers' published numbers as data
(``published``)."""
