"""This instance among the others sharing the state: its name, its roles, and the leases it holds.

Per-recording work (transcription) is claimed row by row (``leases.claim``); a stage whose bookkeeping must have
one writer at a time (scan's listing and event queue, import's crash-doubt and rollover, export's Label Studio
cursor) runs only on the instance holding that stage's lease, and project set-up only under the ``project`` lease.
Timing, with L = ``instance.lease_seconds``: a lease is granted for two thirds of L and renewed every third, so one
missed renewal is survived; every instance also tries, each third of L, to take the stage leases of its roles that
have run out, and runs that stage at once when it gets one. A dead instance's single-writer work therefore resumes
elsewhere within L (its lease runs out at most 2L/3 after it died, and the next try comes at most L/3 later). With
SQLite there is one instance and every lease is its own at once.

Fencing (invariant 1 across a freeze): a stage's run is fenced with the generation of the lease it runs under
(``fence``), so every state change it makes is refused once another instance has taken that lease; right before a side
effect outside the state (a Label Studio import, a project created, a webhook registered, an output written) the holder
calls ``sure``, which extends the lease to outlast the request and raises ``FencedError`` when it was taken meanwhile.
A fenced stage gives its work up: ``run_stage`` logs ``lease.fenced`` and the next holder finishes it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, get_args

from syncd import __version__
from syncd.config import InstanceSettings, Role
from syncd.errors import ConfigError
from syncd.log import get_logger
from syncd.state import StateStore
from syncd.state.db import Fence, FencedError

SINGLE_WRITER = frozenset({"scan", "import", "export"})
"""Stages run by one instance at a time, the holder of the lease named after the stage."""
PROJECT = "project"
"""The lease held while a Label Studio project is set up, rolled over or given its webhook."""


@dataclass
class Instance:
    name: str
    roles: tuple[str, ...]
    lease_seconds: float
    state: StateStore
    log: Any = field(default_factory=get_logger)
    holds: set[str] = field(default_factory=set)
    generations: dict[str, int] = field(default_factory=dict)
    """The generation of each lease as this instance last took it: what its work is fenced with."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """The stages' threads and the heartbeat change ``holds``; each change and its log line happen under it."""

    @property
    def validity(self) -> float:
        """How long a lease lasts unless renewed: two renewals' worth (see the module's timing)."""
        return self.lease_seconds * 2 / 3

    @property
    def renew_every(self) -> float:
        return self.lease_seconds / 3

    @classmethod
    def from_settings(cls, settings: InstanceSettings, state: StateStore) -> Instance:
        name = settings.name or socket.gethostname()
        roles = tuple(role for role in get_args(Role) if role in settings.roles)  # in the stages' order
        return cls(name, roles, settings.lease_seconds, state)

    def join(self) -> None:
        """Register in the state. Refused while another live process on this host runs under the same name (each
        instance needs its own: a name is what its claims are held by)."""
        host, pid = socket.gethostname(), os.getpid()
        twin = next((i for i in self.state.leases.instances() if i["name"] == self.name), None)
        if twin and _same_name_elsewhere(twin, host, pid, self.lease_seconds):
            raise ConfigError(
                f"instance.name: another syncd named {self.name!r} runs on this host (pid {twin['pid']});"
                " give each instance sharing the state its own name"
            )
        replaced = self.state.leases.join(self.name, host, pid, list(self.roles), __version__)
        self.log.info("instance.joined", instance=self.name, roles=list(self.roles), restarted=replaced is not None)
        self.beat()

    def beat(self) -> list[str]:
        """Renew everything this instance holds; a lease lost meanwhile (it was silent too long) is logged."""
        with self._lock:
            held = set(self.state.leases.beat(self.name, self.validity))
            for lost in self.holds - held:
                self.log.warning("lease.lost", lease=lost, instance=self.name)
            self.holds = held
        return sorted(held)

    def runs(self, stage: str) -> bool:
        return stage in self.roles

    def take_free(self) -> list[str]:
        """Take the stage leases of this instance's roles that no one holds (their holder stopped or died); returns
        those newly taken, whose stages should run now."""
        taken = []
        for stage in self.roles:
            free = stage in SINGLE_WRITER and stage not in self.holds and self.state.leases.holder(stage) is None
            if free and self.hold(stage):
                taken.append(stage)
        return taken

    def may_run(self, stage: str) -> bool:
        """This instance has the role, and holds the stage's lease when the stage takes one (taking it if free)."""
        if stage not in self.roles:
            return False
        return stage not in SINGLE_WRITER or self.hold(stage)

    def hold(self, lease: str) -> bool:
        """Take or renew ``lease``; a change of holder is logged where it happens."""
        with self._lock:
            had = lease in self.holds
            generation = self.state.leases.take(lease, self.name, self.validity)
            if generation is not None:
                self.holds.add(lease)
                if not had or self.generations.get(lease) != generation:
                    self.log.info("lease.acquired", lease=lease, instance=self.name, generation=generation)
                self.generations[lease] = generation
                return True
            self.holds.discard(lease)
            return False

    @contextmanager
    def fence(self, lease: str) -> Iterator[Fence]:
        """Fence this thread's state changes in the block with ``lease`` at the generation this instance holds it
        at now (take it first: ``may_run``, ``hold``)."""
        fence = Fence(lease, self.name, self.generations[lease])
        with self.state.db.fenced(fence):
            yield fence

    def sure(self, lease: str, seconds: float) -> None:
        """Right before a side effect under ``lease``: make sure the lease is still this instance's, at the
        generation its work began under, for at least ``seconds`` more (longer than the request may take), extending
        it to last that long. ``FencedError`` (logged and counted by ``run_stage``) when another instance took it. Work
        not fenced with ``lease`` (a step called on its own, as tests do) has no authority to check."""
        fence = self.state.db.fence_for(lease)
        if fence is None:
            return
        try:
            left = self.state.leases.extend(fence, max(seconds, self.validity))
        except FencedError:
            self.lost(lease)
            raise
        if left < seconds:  # cannot happen unless the clock jumped back; refuse rather than guess
            raise FencedError(fence, f"has {left:.1f}s left, fewer than the {seconds:.1f}s the request may take")

    def lost(self, lease: str) -> None:
        """Work under ``lease`` was fenced: this instance no longer holds it (``may_run`` takes it anew)."""
        with self._lock:
            if lease in self.holds:
                self.holds.discard(lease)
                self.log.warning("lease.lost", lease=lease, instance=self.name)

    @contextmanager
    def exclusively(self, lease: str, stop: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Wait for ``lease`` (another instance may be setting up), hold it for the block, then free it."""
        while not self.hold(lease):
            if stop():
                raise InterruptedError(f"stopped while waiting for lease {lease!r}")
            time.sleep(min(1.0, self.lease_seconds / 10))
        try:
            with self.fence(lease):
                yield
        finally:
            with self._lock:
                self.state.leases.release(lease, self.name)
                self.holds.discard(lease)

    def held_leases(self) -> dict[str, int]:
        """Each single-writer lease, 1 when this instance holds it (metrics)."""
        return {name: int(name in self.holds) for name in sorted({*SINGLE_WRITER, PROJECT})}

    def peer_counts(self) -> dict[str, int]:
        """Registered instances, live (renewing) or silent (stopped without leaving, e.g. killed)."""
        now = self.state.leases.now()
        states = [silent(i, self.lease_seconds, now) for i in self.state.leases.instances()]
        return {"live": states.count(False), "silent": states.count(True)}

    def leave(self) -> None:
        """A clean stop: hand everything back so the others need not wait for the leases to run out."""
        with self._lock:
            self.state.leases.leave(self.name)
            self.holds.clear()
        self.log.info("instance.left", instance=self.name)


def silent(instance: dict[str, Any], lease_seconds: float, now: float | None = None) -> bool:
    """A registered instance that has not renewed its leases for longer than a lease lasts (``now`` by the lease
    clock, ``Leases.now``)."""
    return (time.time() if now is None else now) - float(instance["seen_at"]) > lease_seconds


def _same_name_elsewhere(twin: dict[str, Any], host: str, pid: int, lease_seconds: float) -> bool:
    """``twin`` (the registered instance of our name) is another process on this host, alive and renewing."""
    if twin["host"] != host or twin["pid"] == pid or not _alive(int(twin["pid"])):
        return False
    return time.time() - float(twin["seen_at"]) < lease_seconds


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
