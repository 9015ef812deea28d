"""`icefloe maintain`: expire snapshots, compact small files, rewrite manifests, remove orphans."""

from __future__ import annotations

import click

from icefloe.cli.common import format_option, open_project, output, project_options

__all__ = ["COMMANDS"]

_SHOWN = ("table", "expired_snapshots", "files_compacted", "files_written", "manifests_before", "manifests_after",
          "orphans_removed", "bytes_freed", "seconds", "notes")  # fmt: skip


@click.command()
@project_options
@format_option
@click.argument("table", required=False)
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
def maintain(project_dir: str, env: str | None, fmt: str, table: str | None, dry_run: bool) -> None:
    """Maintain TABLE (default: every table) with its policy from icefloe.yaml `maintenance:`."""
    with open_project(project_dir, env) as project:
        reports = project.maintain(table, dry_run=dry_run)
    out = output(fmt)
    if fmt != "table":
        out.rows(reports)
        return
    rows = []
    for report in reports:
        row = {k: report.get(k) for k in _SHOWN}
        row["seconds"] = round(float(report.get("ended", 0)) - float(report.get("started", 0)), 2) if "ended" in report else None
        row["notes"] = "; ".join(report.get("notes") or [])
        rows.append(row)
    out.rows(rows, title="maintenance (dry run: nothing changed)" if dry_run else "maintenance")


COMMANDS = [maintain]
