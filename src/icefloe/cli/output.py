"""Every listing goes through one Output: a rich table for people, JSON or CSV for scripts.

JSON is always an array of objects, one per row, so `icefloe X --format json | jq` just works.
"""

from __future__ import annotations

import csv
import json
import sys
from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Output", "TextOutput", "JsonOutput", "CsvOutput", "make_output", "FORMATS"]

FORMATS = ("table", "json", "csv")


class Output(ABC):
    @abstractmethod
    def rows(self, rows: list[dict[str, Any]], title: str | None = None) -> None: ...

    @abstractmethod
    def message(self, text: str) -> None: ...

    def record(self, row: dict[str, Any], title: str | None = None, long: tuple[str, ...] = ()) -> None:
        """One object. Scripts get it as a one-row listing, so its shape matches `rows`."""
        self.rows([row], title=title)


class TextOutput(Output):
    def __init__(self) -> None:
        from rich.console import Console

        # piped into a file or a pager, a wide table beats one folded into 80 columns
        self.console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)

    def rows(self, rows: list[dict[str, Any]], title: str | None = None) -> None:
        from rich.table import Table

        columns = list(dict.fromkeys(k for row in rows for k in row))
        table = Table(title=title, show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        if not rows:
            self.console.print(f"[dim]{title + ': ' if title else ''}(none)[/dim]")
            return
        self.console.print(table)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def record(self, row: dict[str, Any], title: str | None = None, long: tuple[str, ...] = ()) -> None:
        """One object as `key  value` lines: a row of 25 columns folds into an unreadable strip.
        The `long` fields (an error, say) follow in full, unwrapped, so they can be copied whole."""
        from rich.table import Table

        table = Table(title=title, show_header=False, box=None, padding=(0, 2, 0, 0))
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key, value in row.items():
            if key not in long:
                table.add_row(key, _cell(value))
        self.console.print(table)
        for key in long:
            if row.get(key):
                self.console.print(f"{key}:", style="bold", highlight=False)
                self.console.print(_cell(row[key]), highlight=False, markup=False, soft_wrap=True)


class JsonOutput(Output):
    def rows(self, rows: list[dict[str, Any]], title: str | None = None) -> None:
        sys.stdout.write(json.dumps(rows, default=str, indent=None) + "\n")

    def message(self, text: str) -> None:
        sys.stderr.write(text + "\n")


class CsvOutput(Output):
    def rows(self, rows: list[dict[str, Any]], title: str | None = None) -> None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})

    def message(self, text: str) -> None:
        sys.stderr.write(text + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def make_output(fmt: str) -> Output:
    if fmt == "json":
        return JsonOutput()
    if fmt == "csv":
        return CsvOutput()
    return TextOutput()
