"""The cluster profile's site values, checked before anything is submitted.

profiles/slurm ships placeholders (``CHANGE_ME…``) for the account and partitions: SLURM cannot be asked for them.
Left in place, the executor plugin rejects the account job by job, or a valid account with a placeholder partition
reaches ``sbatch`` — the user learns which file to edit from a stream of failed jobs. The Snakefile's ``onstart``
(which runs before the first submission, never in a dry run) calls ``refuse_placeholders`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable

PLACEHOLDER = "CHANGE_ME"
SITE_KEYS = ("slurm_account", "slurm_partition")
PROFILE_FILE = "profiles/slurm/config.yaml"


class PlaceholderSiteValues(RuntimeError):
    """A job would be submitted with a site value the user has not set."""


def placeholder_values(jobs: Iterable) -> dict[tuple[str, str], list[str]]:
    """{(key, value): sorted rule names} for each site key a submitted job would carry as a placeholder or empty.

    ``jobs`` are Snakemake jobs (or anything with ``.rule.name``, ``.is_local`` and a ``.resources`` mapping); local
    jobs run in Snakemake's own process and are never submitted, so they are not checked."""
    found: dict[tuple[str, str], set[str]] = {}
    for job in jobs:
        if job.is_local:
            continue
        for key in SITE_KEYS:
            value = job.resources.get(key)
            if value is None or (isinstance(value, str) and (not value.strip() or PLACEHOLDER in value)):
                found.setdefault((key, "" if value is None else str(value)), set()).add(job.rule.name)
    return {k: sorted(v) for k, v in sorted(found.items())}


def placeholder_message(found: dict[tuple[str, str], list[str]], profile_file: str = PROFILE_FILE) -> str:
    lines = [f"Nothing was submitted: the cluster profile still has site values to set. Edit {profile_file}:"]
    for (key, value), rules in found.items():
        shown = f'"{value}"' if value else "unset"
        lines.append(f"  {key} = {shown}, in the jobs of {len(rules)} rule(s): {', '.join(rules)}")
    lines.append("(`snakemake --profile slurm -n` plans without them; docs/cluster.md.)")
    return "\n".join(lines)


def refuse_placeholders(jobs: Iterable, profile_file: str = PROFILE_FILE) -> None:
    """Raise ``PlaceholderSiteValues`` naming every unset site key when any job to submit carries one."""
    found = placeholder_values(jobs)
    if found:
        raise PlaceholderSiteValues(placeholder_message(found, profile_file))
