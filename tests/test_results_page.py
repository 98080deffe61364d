"""mrishift results-page: the page is the run's own files (tables, the paper-vs-ours table, figures) with the commit,
wall time and calibration figure it is given."""


from mrishift import cli

PNG = b"\x89PNG\r\n\x1a\nfigure"


def test_the_results_page_is_written_from_the_runs_files(tmp_path):
    results = tmp_path / "results"
    tables, figures = results / "tables/unet2d_residual", results / "figures/unet2d_residual"
    tables.mkdir(parents=True)
    figures.mkdir(parents=True)
    (results / "tables/paper_vs_ours.md").write_text("## Paper vs ours — DART 2020\n\n| what | paper |\n|---|---|\n"
                                                     "| claim A | yes |\n")
    (tables / "paper_gap_closed.md").write_text("Gap closed …\n\n| | every12 |\n|:--|:--|\n| ft_all | 0.42 |\n")
    (tables / "paper_winner_counts.tsv").write_text("budget\twinner\twins\tsignificant\nevery12\tft_all\t3\t1\n"
                                                    "every12\tft_first\t2\t0\n")
    (figures / "paper_winners.png").write_bytes(PNG)
    out = tmp_path / "docs/results/demo.md"
    assert cli.main(["results-page", "--results", str(results), "--out", str(out), "--wall", "27.9 min",
                     "--calibration", "9.0 ft_all steps/s"]) == 0
    page = out.read_text()
    assert "wall time 27.9 min" in page and "9.0 ft_all steps/s" in page and "commit " in page
    assert page.index("| claim A | yes |") < page.index("| ft_all | 0.42 |")  # the paper's claims first
    assert "| ft_all   | 3 (1 significant) |" in page and "| ft_first | 2 (0 significant) |" in page
    assert (out.parent / "figures/unet2d_residual_paper_winners.png").read_bytes() == PNG
    assert "![unet2d_residual: paper_winners](figures/unet2d_residual_paper_winners.png)" in page
