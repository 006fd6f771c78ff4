"""`syncd run`'s wing: scheduling, signals, the HTTP endpoint, metrics and systemd notify. Only the CLI imports it."""

from syncd.daemon.core import Daemon, run

__all__ = ["Daemon", "run"]
