"""Two hosts on one project: a worker here and one in its own network and UTS namespace (its own
address and host name), sharing a PostgreSQL ledger and catalog. The one on the other host is
killed mid-run and started again: its leases cannot be seen to die (another host's process), so
they expire; every file is committed exactly once, and both hosts did some of the work."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.e2e.pgdb import PgDatabase, create_database, drop_database
from tests.helpers import csv_file, make_project, wait_for

pytestmark = [pytest.mark.service, pytest.mark.slow]
FILES, ROWS = 300, 10


class OtherHost:
    """A network namespace joined to this one by a veth pair; socat forwards PostgreSQL to it."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns, self.here, self.there = f"icefloe-{tag}", f"ifa{tag}", f"ifb{tag}"
        octet = int(tag[:2], 16) % 200 + 20
        self.gateway, self.address = f"10.{octet}.77.1", f"10.{octet}.77.2"
        self.forwarders: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        steps = [
            ["ip", "netns", "add", self.ns],
            ["ip", "link", "add", self.here, "type", "veth", "peer", "name", self.there],
            ["ip", "link", "set", self.there, "netns", self.ns],
            ["ip", "addr", "add", f"{self.gateway}/30", "dev", self.here],
            ["ip", "link", "set", self.here, "up"],
            ["ip", "netns", "exec", self.ns, "ip", "addr", "add", f"{self.address}/30", "dev", self.there],
            ["ip", "netns", "exec", self.ns, "ip", "link", "set", self.there, "up"],
            ["ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up"],
        ]
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
        # PostgreSQL listens on loopback only: the other host reaches it through the gateway
        self.forwarders.append(subprocess.Popen(
            ["socat", f"TCP-LISTEN:5432,bind={self.gateway},fork,reuseaddr", "TCP:127.0.0.1:5432"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        assert wait_for(lambda: self._reachable(5432), timeout=10)

    def _reachable(self, port: int) -> bool:
        probe = f"import socket; socket.create_connection(('{self.gateway}', {port}), timeout=1).close()"
        return self.run_quietly([sys.executable, "-c", probe]) == 0

    def run_quietly(self, argv: list[str]) -> int:
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], capture_output=True).returncode

    def popen(self, argv: list[str], hostname: str, log: Path) -> subprocess.Popen[bytes]:
        # its own UTS namespace too: the worker's owner id names another host
        shell = f"hostname {hostname} && exec \"$@\""
        with open(log, "ab") as out:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "unshare", "--uts", "sh", "-c", shell, "sh", *argv],
                stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        for proc in self.forwarders:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.here], capture_output=True)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}


@pytest.fixture
def other_host() -> Iterator[OtherHost]:
    missing = [tool for tool in ("ip", "socat", "unshare") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        why = f"needs root and {', '.join(missing) or 'ip, socat, unshare'} for network namespaces"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    host = OtherHost()
    try:
        host.start()
        yield host
    finally:
        host.stop()


@pytest.fixture
def database() -> Iterator[PgDatabase]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    db = create_database("icefloe_hosts")
    yield db
    drop_database(db)


def test_a_worker_on_another_host_shares_the_work_and_its_death_loses_nothing(
    tmp_path: Path, other_host: OtherHost, database: PgDatabase
) -> None:
    pipeline = {"read": {"format": "csv", "schema": {"id": "long"}}, "write": {"table": "sales.orders"},
                "batch": {"max_rows": 40, "max_wait": "50ms"}}  # fmt: skip
    root = make_project(tmp_path / "p", {"orders": pipeline}, ledger=database.url, catalog=database.url, lease="10s")
    landed = _land(root, 0, FILES // 2)
    remote = database.url.replace("127.0.0.1", other_host.gateway)
    there = [sys.executable, "-m", "icefloe", "-v", "run", "-p", str(root), "--set", f"ledger={remote}", "--set", f"catalog={remote}"]
    with open(tmp_path / "here.log", "wb") as out:
        here = subprocess.Popen([sys.executable, "-m", "icefloe", "-v", "run", "-p", str(root)], stdout=out,
                                stderr=subprocess.STDOUT, env=_env())  # fmt: skip
    b = other_host.popen(there, "host-b", tmp_path / "there.log")
    try:
        import psycopg

        def count(where: str) -> int:
            with psycopg.connect(database.url, connect_timeout=5) as con:
                row = con.execute(f"SELECT count(*) FROM events WHERE {where}").fetchone()  # noqa: S608
            return int(row[0]) if row else 0

        def both_committed() -> bool:
            return all(_commits(tmp_path / f"{name}.log") for name in ("here", "there"))

        assert wait_for(both_committed, timeout=120), (tmp_path / "there.log").read_text()[-3000:]
        # the other host must die holding leases: land more work until it is seen holding some
        # (how fast both hosts drain the first half depends on the machine's load)
        landed = _land(root, landed, FILES // 2)
        holding = "state = 'running' AND lease_owner LIKE 'host-b:%'"
        while True:
            if wait_for(lambda: count(holding) > 0, timeout=30):
                os.killpg(b.pid, signal.SIGSTOP)  # frozen, it cannot release what it was seen holding
                if count(holding) > 0:
                    break
                os.killpg(b.pid, signal.SIGCONT)
            assert landed < 4 * FILES, "the other host never held a lease: " + (tmp_path / "there.log").read_text()[-3000:]
            landed = _land(root, landed, FILES // 2)
        os.killpg(b.pid, signal.SIGKILL)  # the other host dies mid-run, holding leases
        b.wait(10)
        time.sleep(1)
        b = other_host.popen(there, "host-b", tmp_path / "there.log")
        assert wait_for(lambda: count("state = 'committed'") == landed, timeout=180), (tmp_path / "here.log").read_text()[-3000:]
    finally:
        for proc in (here, b):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM) if proc is b else proc.terminate()
                proc.wait(30)
    from icefloe import Project

    with Project(root) as project:
        rows = project.sql("select count(*) as n, count(distinct id) as d from sales.orders").to_pylist()
        assert rows == [{"n": landed * ROWS, "d": landed * ROWS}]
        hosts = {w.host for w in project.ledger.workers()}
        assert {"host-b"} <= hosts and len(hosts) == 2
    assert _commits(tmp_path / "here.log") + _commits(tmp_path / "there.log") >= landed  # a dropped batch is redone


def _land(root: Path, start: int, n: int) -> int:
    """Land files `start`..`start+n` whole (written aside, then renamed in); returns the new total."""
    for i in range(start, start + n):
        aside = csv_file(root / f".{i:04d}.part", "id,v", [f"{i * ROWS + r},x" for r in range(ROWS)])
        aside.rename(root / "landing" / f"{i:04d}.csv")
    return start + n



def _commits(log: Path) -> int:
    """Events a worker's log says it committed (`committed N event(s) ... to TABLE`)."""
    import re

    text = log.read_text() if log.exists() else ""
    return sum(int(n) for n in re.findall(r"committed (\d+) event\(s\)", text))
