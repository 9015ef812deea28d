"""Run XML blocks in order: in this process, round-robin over worker processes, or (the
xml2arrow engine, which parses without holding the GIL) on a pool of threads in this process.

Workers are fresh interpreters running `xmlwork.py` (stdlib + lxml only), started with
`subprocess` rather than `multiprocessing`: no fork of a threaded engine, no re-import of the
caller's `__main__`, and no icefloe/pyiceberg import per worker, which keeps each one at ~20 MB
plus its block. At most `IN_FLIGHT` blocks wait per worker, so memory follows the block size and
not the file size; results are taken in submission order, which keeps record order deterministic.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from icefloe.pipelines.readers import xmlfast, xmlwork

__all__ = ["IN_FLIGHT", "Runner"]

IN_FLIGHT = 2
_WORKER = xmlwork.__file__


class _Worker:
    """One worker process; blocks go out through a sender thread so that the caller never waits
    on a full pipe (it only ever waits for the result it needs next)."""

    def __init__(self) -> None:
        from_parent, to_child = os.pipe()
        from_child, to_parent = os.pipe()
        for fd in (to_child, to_parent):
            _widen(fd)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", _WORKER, str(from_parent), str(to_parent)],
                pass_fds=(from_parent, to_parent),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        finally:
            os.close(from_parent)
            os.close(to_parent)
        self.send_conn = Connection(to_child, readable=False)
        self.recv_conn = Connection(from_child, writable=False)
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.send_error: OSError | None = None
        self.sender = threading.Thread(target=self._send_loop, name=f"icefloe-xml-{self.proc.pid}", daemon=True)
        self.sender.start()

    def _send_loop(self) -> None:
        while (data := self.outbox.get()) is not None:
            try:
                self.send_conn.send_bytes(data)
            except OSError as exc:  # the worker died; receive() reports it
                self.send_error = exc
                break
        self.send_conn.close()

    def send(self, message: tuple) -> None:
        self.outbox.put(pickle.dumps(message, protocol=5))

    def receive(self) -> tuple:
        try:
            return pickle.loads(self.recv_conn.recv_bytes())
        except (EOFError, OSError) as exc:
            code = self.proc.wait()
            raise ChildProcessError(f"xml worker {self.proc.pid} exited with code {code}") from exc

    def stop(self, kill: bool) -> None:
        if kill:
            self.proc.kill()
        self.outbox.put(None)  # end of input: the worker's loop ends
        self.sender.join()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.recv_conn.close()


def _widen(fd: int) -> None:
    # a 1 MiB pipe holds a whole block or result: fewer wake-ups on both sides (Linux only)
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def _extractor(config: tuple) -> xmlwork.Extractor:
    """An extractor whose results stay in this process, with the xml2arrow engine if configured."""
    fast = None if config[4] is None else xmlfast.FastParser.create(*config[4])
    return xmlwork.Extractor(config, lazy=True, fast=fast)


class Runner:
    """`configure`, then `submit` blocks and take `next_result()`s in the same order.

    Starts in-process; `go_parallel()` moves later blocks to worker processes (earlier results are
    already done, so order holds). Always `close()` it: it stops the workers."""

    def __init__(self, workers: int, threads: bool = False) -> None:
        self.workers = workers
        # threads instead of processes: for the xml2arrow engine, which parses without the GIL
        # and whose Arrow output would cost every worker process an interpreter with pyarrow
        self.threads = threads
        self.executor: ThreadPoolExecutor | None = None
        self.extractors = threading.local()
        self.pool: list[_Worker] = []
        self.turn = 0
        self.fifo: deque[Any] = deque()
        self.config: tuple | None = None
        self.local: xmlwork.Extractor | None = None

    @property
    def parallel(self) -> bool:
        return bool(self.pool) or self.executor is not None

    def go_parallel(self) -> None:
        if self.parallel or self.workers < 2:
            return
        if self.threads:
            self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="icefloe-xml")
            return
        if os.name != "posix" or not sys.executable:
            return
        try:
            for _ in range(self.workers):
                self.pool.append(_Worker())
                if self.config is not None:
                    self.pool[-1].send(("config", self.config))
        except OSError:  # cannot start processes here (limits, sandbox): stay in this process
            self.close(failed=True)

    def configure(self, config: tuple) -> None:
        if config == self.config:
            return
        self.config, self.local = config, None
        for worker in self.pool:
            worker.send(("config", config))

    def _thread_process(self, config: tuple, block: bytes, final: bool, markup: bool | None) -> tuple:
        # one extractor per thread: lxml parsers and stylesheets are not shared between threads
        extractor = getattr(self.extractors, "current", None)
        if extractor is None or extractor[0] != config:
            extractor = self.extractors.current = (config, _extractor(config))
        return extractor[1].process(block, final, markup)

    def submit(self, block: bytes, final: bool, markup: bool | None = None) -> None:
        """`markup`: whether the block holds comments, CDATA or PIs, if the caller knows it."""
        assert self.config is not None, "configure() first"
        if self.executor is not None:
            self.fifo.append(self.executor.submit(self._thread_process, self.config, block, final, markup))
            return
        if not self.pool:
            if self.local is None:
                self.local = _extractor(self.config)
            self.fifo.append(self.local.process(block, final, markup))
            return
        worker = self.pool[self.turn]
        self.turn = (self.turn + 1) % len(self.pool)
        worker.send(("block", block, final, markup))
        self.fifo.append(worker)

    @property
    def full(self) -> bool:
        return len(self.fifo) >= max(1, IN_FLIGHT * (self.workers if self.executor is not None else len(self.pool)))

    @property
    def pending(self) -> int:
        return len(self.fifo)

    def next_result(self) -> tuple:
        item = self.fifo.popleft()
        if isinstance(item, Future):
            result = item.result()
        else:
            result = item.receive() if isinstance(item, _Worker) else item
        if result[0] == "crash":
            raise RuntimeError(f"xml worker failed:\n{result[1]}")
        return result

    def close(self, failed: bool = False) -> None:
        pool, self.pool = self.pool, []
        executor, self.executor = self.executor, None
        for item in self.fifo:
            if isinstance(item, Future):
                item.cancel()
        self.fifo.clear()
        if executor is not None:
            executor.shutdown(wait=True)
        for worker in pool:
            worker.stop(kill=failed)
