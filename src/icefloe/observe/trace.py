"""`trace`: one event from landing to snapshot, every step with its timing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from icefloe.project import Project

__all__ = ["trace"]


def trace(project: Project, event_id: str) -> dict[str, Any]:
    event = project.event(event_id)
    steps = project.ledger.steps(event.id)
    origin = steps[0].started_at if steps else event.landed_at
    return {
        "event": event.to_dict(),
        "steps": [
            {
                "step": s.step,
                "at_ms": round((s.started_at - origin) * 1000, 2),
                "took_ms": round(s.millis, 2),
                "detail": " ".join(f"{k}={v}" for k, v in s.detail.items()),
            }
            for s in steps
        ],
        "total_ms": round(((event.committed_at or steps[-1].ended_at) - origin) * 1000, 2) if steps else None,
    }
