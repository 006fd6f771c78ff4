"""The pipeline's stages and the one table that names them: scan -> transcribe -> import -> export.

Each stage is a module (``scan``, ``transcribe``, ``import_``, ``export``) with its steps beside it, named after it
(``scan_deletions``, ``import_reconcile``, ``import_twins``, ``import_doubt``, ``export_plan``, ...); ``tasks`` holds
the task bookkeeping the stages share. A stage's modules import only their own steps and ``tasks``, never another
stage's.

Each stage reads its work from the state store and leaves its results there, so any stage may crash, restart or run
alone without losing or repeating work. ``STAGES`` drives `syncd once`, the daemon's jobs and their intervals, and the
per-stage metrics; a stage added here is added everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd.stages import export, import_, scan, transcribe

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
    feeds: str | None = None
    """The stage that takes this one's output: under `syncd run` it runs as soon as this one has handled something,
    instead of on its own next tick (a new recording waits for no interval between the stages)."""

    def interval(self, settings: Settings) -> float:
        configured = float(getattr(settings.schedule, self.interval_key))
        return configured if self.tick is None else min(configured, self.tick)


STAGES = (
    Stage("scan", scan.run, "scan_interval", feeds="transcribe"),
    Stage("transcribe", transcribe.run, "transcribe_interval", feeds="import"),
    Stage("import", import_.run, "import_interval", tick=import_.TICK),
    Stage("export", export.run, "export_interval"),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
BY_NAME = {stage.name: stage for stage in STAGES}
