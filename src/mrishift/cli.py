"""The ``mrishift`` console command."""

from __future__ import annotations

import argparse
import sys

from mrishift import console
from mrishift.data.integrity import bad_case_lines, check_dataset


def check_data(folder: str) -> int:
    """Integrity-check every CC359-named case under ``folder``; one line per bad case; non-zero if any is bad."""
    try:
        report = check_dataset(folder)
    except FileNotFoundError as error:
        print(f"mrishift check-data: {error}", file=sys.stderr)
        return 2
    if report.empty:
        print(f"mrishift check-data: no CC359-named files (CC0001_philips_15_55_M.nii.gz + _ss.nii.gz) under {folder}",
              file=sys.stderr)
        return 2
    bad = bad_case_lines(report)
    for line in bad:
        print(line)
    print(f"{len(report) - len(bad)} of {len(report)} cases ok, {len(bad)} bad", file=sys.stderr)
    return 1 if bad else 0


def print_plan(configfiles: list[str], default: str, throughput: list[str] | None, switches: str) -> int:
    """``mrishift plan``: the config's bill on each measured GPU."""
    import json
    from pathlib import Path

    from mrishift import plan
    from mrishift.config import ConfigError

    try:
        study = plan.Plan(plan.load_config(configfiles, default))
    except (ConfigError, OSError) as error:
        print(f"mrishift plan: {error}", file=sys.stderr)
        return 2
    files = [Path(f) for f in throughput] if throughput else sorted(Path("bench/measured").glob("*.json"))
    if not files:
        print("mrishift plan: no throughput file (bench/measured/*.json; --throughput)", file=sys.stderr)
        return 2
    name = " + ".join(configfiles) or default
    for path in files:
        print(plan.bill(study, json.loads(path.read_text()), switches, f"{name} [{path.name}]"), end="\n\n")
    return 0


def print_usage(folder: str, margin: float, out: str | None) -> int:
    """``mrishift usage``: what each rule's jobs used (their records under ``folder``), and the memory to ask for."""
    import yaml

    from mrishift import usage
    from mrishift.io import write_table

    table = usage.per_rule(usage.collect(folder))
    if table.empty:
        print(f"mrishift usage: no finished job recorded under {folder} (*{usage.SUFFIX}: a workflow run writes them)",
              file=sys.stderr)
        return 2
    if out:
        write_table(out, table)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nset-resources (peak host memory × {margin:g}, rounded up to a GB):")
    print(yaml.safe_dump(usage.resources(table, margin), default_flow_style=None, sort_keys=True), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mrishift", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-data", help="integrity-check a folder of CC359-named NIfTI files")
    check.add_argument("folder")
    run = commands.add_parser("run-workflow", help="run a command (Snakemake) with its output in a log file and one "
                                                   "progress line per finished job on the console")
    run.add_argument("--log", required=True, help="where the command's full output goes")
    run.add_argument("workflow_command", nargs=argparse.REMAINDER, help="the command, after --")
    summary = commands.add_parser("headline", help="print where the report is and the study's gap-closed tables")
    summary.add_argument("--results", default="results")
    summary.add_argument("--report", default="results/report.html")
    planned = commands.add_parser("plan", help="the bill before the run: a config's runs per role and arm, its GPU "
                                               "jobs and its GPU-hours on each GPU measured in bench/measured/")
    planned.add_argument("configfiles", nargs="*", help="overlays, as snakemake --configfile takes them, layered over "
                                                        "--default")
    planned.add_argument("--default", default="config/config.yaml", help="the Snakefile's configfile")
    planned.add_argument("--throughput", nargs="*", help="bench/gpu_throughput.py JSON files (default: "
                                                         "bench/measured/*.json)")
    planned.add_argument("--switches", default="defaults", help="a switch setting of the throughput files "
                                                                "(defaults: fp32, as the config's defaults)")
    used = commands.add_parser("usage", help="what each rule's jobs used (time per unit of work, peak host and GPU "
                                             "memory, output size), from the records the jobs write beside their logs")
    used.add_argument("--logs", default="logs", help="the run's logs folder")
    used.add_argument("--margin", type=float, default=1.5, help="memory asked for = measured peak × margin")
    used.add_argument("--out", help="also write the table here (TSV)")
    page = commands.add_parser("results-page", help="write a finished run's results page (Markdown + figures) from "
                                                    "its files")
    page.add_argument("--results", default="results")
    page.add_argument("--out", default="docs/results/demo.md")
    page.add_argument("--config", default="config/config.yaml", help="what the run ran, for the page's title")
    page.add_argument("--wall", default="not measured", help="the run's wall time, e.g. '27.9 min (make demo)'")
    page.add_argument("--calibration", default="not measured", help="the same hour's CPU benchmark figure")
    args = parser.parse_args(argv)
    if args.command == "results-page":
        from pathlib import Path

        from mrishift.reporting import results_page

        print(results_page.write(Path(args.results), Path(args.out), args.config, args.wall, args.calibration,
                                 Path.cwd()))
        return 0
    if args.command == "usage":
        return print_usage(args.logs, args.margin, args.out)
    if args.command == "plan":
        return print_plan(args.configfiles, args.default, args.throughput, args.switches)
    if args.command == "check-data":
        return check_data(args.folder)
    if args.command == "run-workflow":
        command = args.workflow_command[1:] if args.workflow_command[:1] == ["--"] else args.workflow_command
        if not command:
            parser.error("run-workflow needs a command after --")
        return console.run_workflow(command, args.log)
    if args.command == "headline":
        return console.headline(args.results, args.report)
    return 2  # unreachable: argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
