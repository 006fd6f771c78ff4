"""The pipeline's stages, one module each, and the one table that names them: scan -> transcribe -> import -> export.

Each stage reads its work from the state store and leaves its results there, so any stage may crash, restart or run
alone without losing or repeating work. ``STAGES`` drives `syncd once`, the daemon's jobs and their intervals, and the
per-stage metrics; a stage added here is added everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd import vocabulary
from syncd.stages import accepted, exporter, importer, scan, stitch, transcribe

if TYPE_CHECKING:
    from syncd.config import Settings
    from syncd.services import Services


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Services, threading.Event], int]
    """Does what is due now and returns how many items it handled; returns early once the event is set."""
    interval_key: str
    """The ``[schedule]`` key holding the seconds between two runs under `syncd run`."""
    tick: float | None = None
    """Run at least this often (seconds) when the key allows longer: the stage itself decides when work is due."""

    def interval(self, settings: Settings) -> float:
        configured = float(getattr(settings.schedule, self.interval_key))
        return configured if self.tick is None else min(configured, self.tick)


def export(svc: Services, stop: threading.Event) -> int:
    """Auto-accepted transcripts first (they need S3 only, so a Label Studio outage does not hold them), then
    reviews, then recordings whose review units are all reviewed, then the reviewers' vocabulary if they changed
    it."""
    written = accepted.run(svc, stop) + exporter.run(svc, stop) + stitch.run(svc, stop)
    vocabulary.refresh(svc)
    return written


STAGES = (
    Stage("scan", scan.run, "scan_interval"),
    Stage("transcribe", transcribe.run, "transcribe_interval"),
    Stage("import", importer.run, "import_interval", tick=importer.TICK),
    Stage("export", export, "export_interval"),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
BY_NAME = {stage.name: stage for stage in STAGES}
