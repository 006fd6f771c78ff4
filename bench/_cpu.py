"""Where a path's CPU goes: syncd (this process), Label Studio and the S3 server, which share the machine's cores.

A throughput figure alone does not say what bounds it. Split by process, the same run shows whether a path is held by
its own work, by Label Studio's, or by the S3 server's, and how many of the cores it kept busy: a path that keeps
every core busy can go no faster than ``cores / CPU per item`` on this machine, whatever it does with its time.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from devstack import Stack
from syncd.transcribers.whisper_model import usable_cores


def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` prints it: every figure in the README names the machine it ran on."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"Model name:\s*(.+)", out)
    return found.group(1).strip() if found else "unknown"


def machine() -> str:
    """One line naming the CPU, the usable cores and the load before a run."""
    return f"CPU {cpu_model()}, {usable_cores()} usable cores, load average {os.getloadavg()[0]:.2f} before the run"


@dataclass(frozen=True)
class Split:
    """CPU seconds by process over one timed path, and its wall seconds."""

    syncd: float = 0.0
    labelstudio: float = 0.0
    s3: float = 0.0
    wall: float = 0.0

    @property
    def total(self) -> float:
        return self.syncd + self.labelstudio + self.s3

    @property
    def cores_busy(self) -> float:
        return self.total / self.wall if self.wall else 0.0

    def per_item_ms(self, items: int) -> tuple[float, float, float, float]:
        """(syncd, Label Studio, S3, all) CPU milliseconds per item."""
        n = max(items, 1)
        return tuple(1000 * s / n for s in (self.syncd, self.labelstudio, self.s3, self.total))  # type: ignore[return-value]

    def bound(self, items: int) -> float:
        """Items per second if every usable core were busy with this path's work and nothing else."""
        return usable_cores() * items / self.total if self.total else float("inf")


@dataclass
class Meter:
    """``with meter.timed(): ...`` records one path's split in ``meter.last``."""

    stack: Stack
    last: Split = field(default_factory=Split)

    def _now(self) -> Split:
        return Split(
            time.process_time(), self.stack.labelstudio.cpu_seconds(), self.stack.s3.cpu_seconds(), time.perf_counter()
        )

    @contextmanager
    def timed(self) -> Iterator[None]:
        before = self._now()
        yield
        after = self._now()
        self.last = Split(
            after.syncd - before.syncd,
            after.labelstudio - before.labelstudio,
            after.s3 - before.s3,
            after.wall - before.wall,
        )


HEADER = f"{'CPU ms/item: syncd':>19} {'LS':>6} {'S3':>6} {'all':>6}  cores busy"


def columns(split: Split, items: int) -> str:
    """A table row's CPU columns, in the order of ``HEADER``."""
    if not items or not split.wall:
        return ""
    ours, ls, s3, total = split.per_item_ms(items)
    return f"{ours:>19.2f} {ls:>6.2f} {s3:>6.2f} {total:>6.2f}  {split.cores_busy:>4.2f} of {usable_cores()}"
