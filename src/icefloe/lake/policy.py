"""When and how to maintain a table: the policy, apart from the maintenance that needs pyiceberg
(`status` reads the small-file threshold without importing it)."""

from __future__ import annotations

from dataclasses import dataclass

from icefloe.errors import ConfigError

__all__ = ["MAINTAINED_AT_PROPERTY", "MAINTENANCE_JOB", "MaintenancePolicy"]

# the ledger job kind of a maintenance run (`upkeep.JOB_KIND`)
MAINTENANCE_JOB = "maintain"

# the table property a maintenance run sets to its time
MAINTAINED_AT_PROPERTY = "icefloe.maintained-at"


@dataclass(frozen=True)
class MaintenancePolicy:
    """When and how to maintain one table. Defaults are measured, see `keep_snapshots`.

    keep_snapshots: pyiceberg copies the whole metadata (every snapshot) about 19 times per
    commit, so each retained snapshot costs ~0.4 ms on every commit (2-core machine). With a run
    every 50 commits a table holds 20..70 snapshots: commits stay ~15 ms cheaper than with 50
    kept, and a reader can still time-travel to any of the last 20 commits (`keep_for` adds a
    time window on top). every_commits=50 balances that growth against the ~0.3 s a run costs.
    """

    keep_snapshots: int = 20
    keep_for: float = 0.0  # seconds; also keep every snapshot younger than this (time travel window)
    target_file_bytes: int = 128 << 20
    small_file_bytes: int | None = None  # None: a quarter of the target
    compact_min_files: int = 8
    sort_by: tuple[str, ...] = ()
    max_manifests: int = 16
    orphan_min_age: float = 3 * 86400.0
    every_commits: int = 50  # 0 turns a trigger off
    small_files: int = 64
    every: float = 0.0

    def __post_init__(self) -> None:
        if self.keep_snapshots < 1:
            raise ConfigError(f"keep_snapshots must be at least 1, got {self.keep_snapshots}")
        if self.target_file_bytes <= 0 or (self.small_file_bytes is not None and self.small_file_bytes < 0):
            raise ConfigError("target_file_bytes must be positive and small_file_bytes not negative")
        if min(self.keep_for, self.orphan_min_age, self.every, self.every_commits, self.small_files, self.max_manifests) < 0:
            raise ConfigError("maintenance intervals, ages and counts cannot be negative")

    @property
    def small_threshold(self) -> int:
        """Files below this many bytes count as small. A quarter of the target: a file that big
        already amortises its per-file open and footer cost, rewriting it buys little."""
        return self.target_file_bytes // 4 if self.small_file_bytes is None else self.small_file_bytes
