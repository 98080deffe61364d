"""The demo's console: one line per finished job, errors shown, the full output in the log, the headline table."""

import io
import sys

from mrishift import cli, console

SNAKEMAKE_LIKE = """Job stats:
job         count
--------  -------
resample        2
analyse         1
total           3

rule resample:
    jobid: 3
Finished jobid: 3 (Rule: resample)
1 of 3 steps (33%) done
rule resample:
    jobid: 2
Finished jobid: 2 (Rule: resample)
2 of 3 steps (67%) done
localrule analyse:
    jobid: 1
Finished jobid: 1 (Rule: analyse)
3 of 3 steps (100%) done
"""


def printing(text, status=0):
    """A command that prints ``text`` (half to stderr, as Snakemake does) and exits with ``status``."""
    lines = text.splitlines(keepends=True)
    return [sys.executable, "-c", "import sys\n"
            + "".join(f"print({line!r}, end='', file=sys.{'stderr' if i % 2 else 'stdout'}, flush=True)\n"
                      for i, line in enumerate(lines))
            + f"sys.exit({status})"]


def test_one_line_per_finished_job_and_the_full_output_in_the_log(tmp_path):
    out = io.StringIO()
    assert console.run_workflow(printing(SNAKEMAKE_LIKE), tmp_path / "logs/workflow.log", out) == 0
    lines = out.getvalue().splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert [line.split(" · ")[0] for line in progress] == ["[2/3] resample: 2 of 2 jobs (stage done)",
                                                           "[3/3] analyse: 1 of 1 jobs (stage done)"]  # per stage
    after_header = lines[lines.index(f"full log: {tmp_path / 'logs/workflow.log'}") + 1:]
    assert progress[-1].endswith("ETA 0s") and not any("jobid" in line for line in after_header)  # no job dumps
    assert lines[-1].startswith("finished in ")
    assert (tmp_path / "logs/workflow.log").read_text() == SNAKEMAKE_LIKE  # every line, in order


def test_a_failure_shows_the_error_and_the_logs_tail_and_keeps_its_status(tmp_path):
    failing = SNAKEMAKE_LIKE.split("localrule")[0] + "Error in rule train_source:\n    jobid: 7\n    log: x.log\n"
    out = io.StringIO()
    assert console.run_workflow(printing(failing, status=1), tmp_path / "run.log", out) == 1
    text = out.getvalue()
    assert "Error in rule train_source:" in text.split("--- failed")[0]  # as it came
    assert "--- failed (exit status 1)" in text and text.rstrip().endswith("log: x.log")  # then the log's tail


def test_the_cli_runs_the_command_after_the_double_dash(tmp_path, capsys):
    assert cli.main(["run-workflow", "--log", str(tmp_path / "w.log"), "--", *printing("3 of 3 steps (100%) done\n",
                                                                                       status=3)]) == 3
    assert "[3/3] job · " in capsys.readouterr().out  # the last step always has its line


def test_the_headline_opens_with_the_papers_claims_then_each_gap_closed_table(tmp_path):
    table = tmp_path / "results/tables/unet2d_residual/paper_gap_closed.md"
    table.parent.mkdir(parents=True)
    table.write_text("Gap closed …\n\n| | every12 |\n|:--|:--|\n| ft_all | 0.54 (0.34) [0.38, 0.66] |\n")
    (tmp_path / "results/tables/paper_vs_ours.md").write_text(
        "## Paper vs ours — DART 2020\n\nSynthetic: compare the claims.\n\n| what | where | paper |\n|---|---|---|\n"
        "| sDice siemens_3 model on ge_15 | Table 1 | 0.09 (0.05) | 0.03 |\n"
        "| fine-tuning the first layers beats the last layers — at every12 | Sec. 4 | yes | yes: FTF better in 5 |\n")
    out = io.StringIO()
    assert console.headline(tmp_path / "results", tmp_path / "results/report.html", out) == 0
    text = out.getvalue()
    assert f"report: {tmp_path / 'results/report.html'}" in text
    assert text.index("| fine-tuning the first layers beats") < text.index("| ft_all | 0.54 (0.34) [0.38, 0.66] |")
    assert "Synthetic: compare the claims." in text and "model on ge_15" not in text  # cells stay in the file
    assert console.headline(tmp_path / "nothing", tmp_path / "report.html", io.StringIO()) == 1


def test_a_long_stage_gets_a_heartbeat_line(tmp_path, monkeypatch):
    monkeypatch.setattr(console, "HEARTBEAT_S", 0.0)  # every finished job is "a minute later"
    out = io.StringIO()
    console.run_workflow(printing(SNAKEMAKE_LIKE), tmp_path / "run.log", out)
    assert [line.split(" · ")[0] for line in out.getvalue().splitlines() if line.startswith("[")] == [
        "[1/3] resample: 1 of 2 jobs", "[2/3] resample: 2 of 2 jobs (stage done)",
        "[3/3] analyse: 1 of 1 jobs (stage done)"]


def test_the_eta_weighs_each_rules_jobs_left_by_its_own_duration():
    planned = {"resample": 100, "train": 10, "finetune": 30, "all": 1}
    finished = {"resample": [1.0] * 100, "train": [300.0, 500.0]}  # 100 cheap jobs, 2 of 10 trainings done
    # 8 trainings × 400 s at the parallelism seen (900 job-s in 450 s: 2) → 1,600 s; finetune has no timing yet
    assert console.eta(planned, finished, elapsed=450.0) == "26m40s + finetune untimed"
    assert console.eta({"train": 2}, {"train": [60.0]}, elapsed=120.0) == "1m00s"  # parallelism never below 1
    assert console.eta({"train": 1}, {"train": [60.0]}, elapsed=60.0) == "0s"


def test_the_eta_line_comes_from_the_jobs_start_and_finish(tmp_path):
    out = io.StringIO()
    console.run_workflow(printing(SNAKEMAKE_LIKE.replace("3 of 3 steps", "3 of 4 steps")), tmp_path / "run.log", out)
    last = [line for line in out.getvalue().splitlines() if line.startswith("[")][-1]
    assert last.startswith("[3/4] analyse") and last.endswith("ETA 0s")  # every planned job done and timed
