"""A ledger that cannot be opened is named in the error, without its password (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe.errors import ConfigError, LedgerUnavailableError
from icefloe.ledger import open_ledger


def test_an_unreachable_postgres_ledger_is_named_without_its_password(tmp_path: Path) -> None:
    # nothing listens on port 1: refused at once
    with pytest.raises(LedgerUnavailableError) as err:
        open_ledger("postgresql://ice:s3cret@127.0.0.1:1/lake_ledger?connect_timeout=2", tmp_path)
    message = str(err.value)
    assert "postgresql://ice:***@127.0.0.1:1/lake_ledger" in message
    assert "s3cret" not in message


def test_an_unknown_ledger_scheme_does_not_echo_the_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        open_ledger("postgresq://ice:s3cret@db:5432/lake_ledger", tmp_path)
    message = str(err.value)
    assert "postgresq://ice:***@db:5432/lake_ledger" in message
    assert "s3cret" not in message


def test_a_password_given_as_a_uri_parameter_is_redacted_too(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailableError) as err:
        open_ledger("postgresql://ice@127.0.0.1:1/lake_ledger?password=s3cret&connect_timeout=2", tmp_path)
    message = str(err.value)
    assert "password=***&connect_timeout=2" in message
    assert "s3cret" not in message


def test_a_postgres_uri_that_does_not_parse_is_a_config_error_naming_the_ledger(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        open_ledger("postgresql://ice:s3cret@127.0.0.1:1/lake ledger", tmp_path)
    message = str(err.value)
    assert "ledger postgresql://ice:***@127.0.0.1:1/lake ledger" in message and "spaces" in message
    assert "s3cret" not in message
