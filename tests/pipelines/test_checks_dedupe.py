from __future__ import annotations

import pyarrow as pa
import pytest

from icefloe.errors import ConfigError, DataError
from icefloe.pipelines.checks import CHECK_COLUMN, apply_checks, validate_checks
from icefloe.pipelines.dedupe import keep_by_key


def test_failing_rows_are_split_out_with_the_checks_they_failed() -> None:
    batch = pa.table({"id": [1, None, 3, 4], "amount": [5, 6, -1, None], "status": ["new", "paid", "new", "lost"]})
    checks = [{"not_null": ["id"]}, {"range": {"amount": [0, None]}}, {"accepted_values": {"status": ["new", "paid"]}}]
    good, bad = apply_checks(batch, checks)
    assert good.column("id").to_pylist() == [1]
    assert bad is not None
    assert bad.column(CHECK_COLUMN).to_pylist() == ["not_null(id)", "range(amount)", "range(amount),accepted_values(status)"]


def test_all_passing_rows_give_no_quarantine() -> None:
    good, bad = apply_checks(pa.table({"email": ["a@b.c"]}), [{"regex": {"email": "^[^@]+@[^@]+$"}}])
    assert good.num_rows == 1 and bad is None


def test_check_on_missing_column_is_a_data_error() -> None:
    with pytest.raises(DataError, match="'nope'"):
        apply_checks(pa.table({"id": [1]}), [{"not_null": ["nope"]}])


@pytest.mark.parametrize("check", [{"unique": ["id"]}, {"range": {"a": [1]}}, {"not_null": "id"}])
def test_malformed_checks_are_config_errors(check: dict) -> None:
    with pytest.raises(ConfigError):
        validate_checks([check])


def test_dedupe_keeps_last_or_first_in_original_order() -> None:
    data = pa.table({"k": [1, 2, 1, 3, 2], "v": ["a", "b", "c", "d", "e"]})
    assert keep_by_key(data, ["k"], "last").column("v").to_pylist() == ["c", "d", "e"]
    assert keep_by_key(data, ["k"], "first").column("v").to_pylist() == ["a", "b", "d"]


def test_dedupe_treats_null_keys_as_one_key() -> None:
    data = pa.table({"k": [None, None, 1], "v": [1, 2, 3]})
    assert keep_by_key(data, ["k"]).column("v").to_pylist() == [2, 3]
