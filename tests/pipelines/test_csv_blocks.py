"""A big CSV parses in blocks on several threads: the same rows, in file order, and the same errors."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from icefloe.errors import DataError
from icefloe.pipelines.readers import csvfile, read_batches

SCHEMA = {"id": pa.int64(), "at": pa.timestamp("us"), "amount": pa.decimal128(12, 2), "name": pa.string()}
ROWS = 60_000  # ~2.6 MB: more than two of the 1 MiB blocks that batch_rows=1000 gives


def _lines(rows: int = ROWS, newline: str = "\n") -> list[str]:
    # `extra` is not declared: its type is inferred from the first block
    header = "id,at,amount,name,extra"
    body = [
        f"{i},2026-11-01 00:{i // 60 % 60:02d}:{i % 60:02d},{i}.{i % 100:02d},n{i % 97},{i * 3}" for i in range(rows)
    ]
    return [header + newline, *(line + newline for line in body)]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The BlockReaders the CSV reader built (none: it streamed on one thread)."""
    made: list[Any] = []

    class Spy(csvfile.BlockReader):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(csvfile, "BlockReader", Spy)
    monkeypatch.setattr(csvfile, "parse_workers", lambda: 2)
    return made


def _read(path: Path, **kwargs: Any) -> pa.Table:
    batches = list(
        read_batches(path, fmt="csv", schema=SCHEMA, batch_rows=1000, display_name="landing:big.csv", **kwargs)
    )
    return pa.Table.from_batches(batches)


def _streamed(path: Path, monkeypatch: pytest.MonkeyPatch) -> pa.Table:
    with monkeypatch.context() as m:
        m.setattr(csvfile, "parse_workers", lambda: 1)
        return _read(path)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_blocks_give_the_rows_the_stream_gives(
    tmp_path: Path, spy: list[Any], monkeypatch: pytest.MonkeyPatch, newline: str, final_newline: bool
) -> None:
    data = "".join(_lines(newline=newline))
    path = tmp_path / "big.csv"
    path.write_text(data if final_newline else data.rstrip("\r\n"), newline="")
    table = _read(path)
    assert len(spy) == 1
    assert table.num_rows == ROWS
    assert table.column("id").to_pylist() == list(range(ROWS))  # file order
    assert table.column("extra").type == pa.int64() and table.column("extra")[ROWS - 1].as_py() == (ROWS - 1) * 3
    assert table.column("amount")[1234].as_py() == Decimal("1234.34")
    assert table.equals(_streamed(path, monkeypatch))


def test_a_small_file_streams_on_one_thread(tmp_path: Path, spy: list[Any]) -> None:
    path = tmp_path / "small.csv"
    path.write_text("".join(_lines(2000)))
    assert _read(path).num_rows == 2000 and spy == []


def _broken(tmp_path: Path, line: int, text: str) -> Path:
    lines = _lines()
    lines[line - 1] = text + "\n"
    path = tmp_path / "big.csv"
    path.write_text("".join(lines))
    return path


def test_a_bad_value_in_a_late_block_names_its_line(tmp_path: Path, spy: list[Any]) -> None:
    path = _broken(tmp_path, 55_001, "55000,2026-11-01 00:00:00,not-a-number,n,1")
    with pytest.raises(DataError) as info:
        _read(path)
    assert len(spy) == 1
    assert "landing:big.csv:55001:" in str(info.value) and "amount" in str(info.value)


def test_a_late_column_the_first_block_inferred_otherwise_names_its_line(tmp_path: Path, spy: list[Any]) -> None:
    path = _broken(tmp_path, 50_001, "50000,2026-11-01 00:00:00,1.00,n,text")
    with pytest.raises(DataError) as info:
        _read(path)
    assert "landing:big.csv:50001:" in str(info.value) and "extra" in str(info.value)


@pytest.mark.parametrize("line", [30_001, 59_990])
def test_a_quote_left_open_in_a_late_block_names_its_line(tmp_path: Path, spy: list[Any], line: int) -> None:
    # wherever the block cuts fall, inside the open quote or not, the line it opened on is named
    path = _broken(tmp_path, line, f'{line},2026-11-01 00:00:00,1.00,"n,1')
    with pytest.raises(DataError) as info:
        _read(path)
    assert len(spy) == 1
    assert f"landing:big.csv:{line}:" in str(info.value) and "quote" in str(info.value)


def test_stopping_early_ends_the_parse_threads(tmp_path: Path, spy: list[Any]) -> None:
    path = tmp_path / "big.csv"
    path.write_text("".join(_lines()))
    batches = read_batches(path, fmt="csv", schema=SCHEMA, batch_rows=1000)
    next(batches)
    batches.close()  # type: ignore[attr-defined]
    assert len(spy) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("icefloe-csv")]
