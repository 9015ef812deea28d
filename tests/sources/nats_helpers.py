"""NATS test helpers: a fresh stream per test (the `stream` fixture is in conftest.py), publish,
the consumer's counts, a project on the stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require_service

NATS = "nats://127.0.0.1:4222"


async def admin(fn: Any) -> Any:
    import nats

    nc = await nats.connect(NATS)
    try:
        return await fn(nc.jetstream())
    finally:
        await nc.close()


def publish(stream: str, bodies: list[bytes]) -> None:
    async def go(js: Any) -> None:
        for body in bodies:
            await js.publish(f"{stream.lower()}.in", body)

    asyncio.run(admin(go))


def lines(*ns: int) -> bytes:
    return b"".join(json.dumps({"n": n, "page": f"p{n}"}).encode() + b"\n" for n in ns)


def consumer(stream: str, durable: str = "icefloe") -> tuple[int, int]:
    async def go(js: Any) -> tuple[int, int]:
        info = await js.consumer_info(stream, durable)
        return info.num_pending, info.num_ack_pending

    return asyncio.run(admin(go))


def fresh_stream() -> Iterator[str]:
    require_service("127.0.0.1", 4222, "NATS")
    name = f"REC{uuid.uuid4().hex[:8].upper()}"
    asyncio.run(admin(lambda js: js.add_stream(name=name, subjects=[f"{name.lower()}.>"])))
    yield name
    asyncio.run(admin(lambda js: js.delete_stream(name)))


def project_for(root: Path, stream: str, *, read: dict[str, Any] | None = None, pipeline: dict[str, Any] | None = None,
                top: dict[str, Any] | None = None, **nats: Any) -> Path:  # fmt: skip
    """`read`, `pipeline` (more of the pipeline: retry...), `top` (catalog...), the rest: `nats:`."""
    clicks = {
        "read": read or {"format": "ndjson", "schema": {"n": "long"}},
        "write": {"table": "web.clicks"},
        **(pipeline or {}),
    }
    config = {
        "sources": {"bus": {"type": "nats", "nats": {"url": NATS, "stream": stream, "max_wait": "100ms", **nats}}},
        "routes": [{"source": "bus", "match": "**", "pipeline": "clicks"}],
        "pipelines": {"clicks": clicks},
        **(top or {}),
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root
