"""`syncd run` as a real process: stage jobs on their schedule, SIGTERM drain, SIGHUP reload, systemd notify."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import SENTENCES, VENV_BIN, Stack, free_port, log_events, run_syncd, speak
from devstack import SyncdProcess as Daemon
from syncd import errors
from syncd.state import StateStore

FAST = "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 1\n"


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def test_run_cycles_until_sigterm(stack: Stack, config_file: Path, daemons: list[Daemon]) -> None:
    config_file.write_text(config_file.read_text() + FAST)
    daemon = Daemon(config_file, stack)
    daemons.append(daemon)
    first = daemon.wait("cycle.completed")
    daemon.wait("cycle.completed", after=first + 1, timeout=30)
    cycle = daemon.events[first]
    assert set(cycle["counts"]) == {"scan", "transcribe", "import", "export"} and cycle["ok"] is True
    assert daemon.stop() == errors.OK
    names = [e["event"] for e in daemon.events]
    assert "daemon.stopping" in names and names[-1] == "daemon.stopped"


def test_sigterm_drains_running_stages(
    stack: Stack, s3: Any, bucket: str, config_file: Path, tmp_path: Path, daemons: list[Daemon]
) -> None:
    for i, sentence in enumerate(SENTENCES):
        s3.upload_file(str(speak(sentence, tmp_path / f"a{i}.wav")), bucket, f"drain/a{i}.wav")
    config_file.write_text(config_file.read_text() + FAST)
    daemon = Daemon(config_file, stack)
    daemons.append(daemon)
    daemon.wait("transcription.completed", timeout=120)
    assert daemon.stop(timeout=120) == errors.OK

    names = [e["event"] for e in daemon.events]
    stopping = names.index("daemon.stopping")
    running = daemon.events[stopping]["running"]
    finished = {e["stage"] for e in daemon.events[stopping:] if e["event"] == "stage.completed"}
    assert set(running) <= finished, "every stage running at SIGTERM ran to its end before exit"
    assert names[-1] == "daemon.stopped"

    # Nothing was left half-done: a one-shot run afterwards takes every recording the rest of the way.
    state = StateStore(str(tmp_path / "state.db"))
    assert state.recordings.count("importing") == 0
    state.close()
    run_syncd(["once", "-c", str(config_file)], stack)
    state = StateStore(str(tmp_path / "state.db"))
    assert state.recordings.count("imported") == len(SENTENCES), state.recordings.counts()
    state.close()


def test_sighup_reloads_and_keeps_running_config_when_invalid(
    stack: Stack, config_file: Path, daemons: list[Daemon]
) -> None:
    good = config_file.read_text() + FAST
    config_file.write_text(good)
    daemon = Daemon(config_file, stack)
    daemons.append(daemon)
    daemon.wait("cycle.completed")

    config_file.write_text(good.replace('engine = "whisper"', 'engine = "google"'))
    mark = len(daemon.events)
    daemon.proc.send_signal(signal.SIGHUP)
    failed = daemon.events[daemon.wait("config.reload_failed", after=mark, timeout=30)]
    assert "transcriber.engine" in failed["error"] and failed["kept"] == "running config"
    daemon.wait("cycle.completed", after=mark, timeout=30)  # still cycling on the old config

    config_file.write_text(good.replace("export_interval = 1", "export_interval = 2"))
    mark = len(daemon.events)
    daemon.proc.send_signal(signal.SIGHUP)
    reloaded = daemon.events[daemon.wait("config.reloaded", after=mark, timeout=30)]
    assert reloaded["intervals"]["export"] == 2
    daemon.wait("cycle.completed", after=mark, timeout=30)
    assert daemon.stop() == errors.OK


def _datagrams(sock: socket.socket, until: float) -> Iterator[str]:
    while time.monotonic() < until:
        sock.settimeout(max(until - time.monotonic(), 0.01))
        try:
            yield sock.recv(4096).decode()
        except TimeoutError:
            return


def test_systemd_notify_protocol(stack: Stack, ls: Any, config_file: Path, tmp_path: Path) -> None:
    """READY only once connected (the project exists by then), STATUS summaries, WATCHDOG pings, STOPPING."""
    config_file.write_text(config_file.read_text() + FAST)
    title = next(line.split('"')[1] for line in config_file.read_text().splitlines() if line.startswith("project"))
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        daemon = Daemon(config_file, stack, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
        try:
            messages: list[str] = []
            for message in _datagrams(sock, time.monotonic() + 60):
                if message.startswith("READY=1") and not any(m.startswith("READY=1") for m in messages):
                    assert any(p.title == title for p in ls.projects.list()), "READY before connecting"
                messages.append(message)
                if sum(m == "WATCHDOG=1" for m in messages) >= 3 and any("pending" in m for m in messages):
                    break
            daemon.proc.send_signal(signal.SIGTERM)
            messages += list(_datagrams(sock, time.monotonic() + 30))
            assert daemon.proc.wait(30) == errors.OK, "".join(daemon.lines)[-3000:] + str(messages)
        finally:
            daemon.kill()

    ready = next(m for m in messages if m.startswith("READY=1"))
    assert f"MAINPID={daemon.proc.pid}" in ready.splitlines()
    assert messages.index(ready) < messages.index("WATCHDOG=1")
    summaries = [m.removeprefix("STATUS=") for m in messages if m.startswith("STATUS=") and "pending" in m]
    assert summaries and all("\n" not in s for s in summaries)
    assert "last good cycle" in summaries[-1]
    assert any(m.startswith("STOPPING=1") for m in messages)
    assert "WATCHDOG=1" not in messages[messages.index(next(m for m in messages if m.startswith("STOPPING=1"))) :]


def test_unreachable_labelstudio_exits_69(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[labelstudio]\nurl = "http://127.0.0.1:{free_port()}"\n[[sources]]\nbucket = "b"\n'
        f'[state]\npath = "{tmp_path / "state.db"}"\n[http]\nlisten = ""\n[log]\nformat = "json"\n'
        "[schedule]\nstartup_timeout = 2\n"
    )
    result = subprocess.run(
        [str(VENV_BIN / "syncd"), "run", "-c", str(config)],
        env={**os.environ, "LABEL_STUDIO_API_KEY": "x" * 40, "NOTIFY_SOCKET": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == errors.UNAVAILABLE, result.stdout + result.stderr
    events = [json.loads(line)["event"] for line in result.stdout.splitlines() if line.startswith("{")]
    assert "daemon.waiting" in events and events[-1] == "daemon.connect_failed"


def test_rejected_token_exits_77(stack: Stack, config_file: Path) -> None:
    result = run_syncd(["run", "-c", str(config_file)], stack, env={"LABEL_STUDIO_API_KEY": "f" * 40}, check=False)
    assert result.returncode == errors.NOPERM, result.stdout[-3000:]
    (failed,) = [e for e in log_events(result.stdout) if e["event"] == "daemon.connect_failed"]
    assert failed["reason"] == (
        "labelstudio.api_key_env ($LABEL_STUDIO_API_KEY): Label Studio refused the token (HTTP 401: Invalid token.)"
    )


def test_a_token_issued_in_label_studios_future_exits_77_and_says_so(stack: Stack, config_file: Path) -> None:
    """Label Studio refuses a personal access token whose issue time is ahead of its clock as "Token is invalid", the
    words of a bad signature too; syncd reads the time off the token and says the clocks are apart. The token is the
    stack's own, re-signed with the server's key and an issue time ten minutes on."""
    ahead = stack.labelstudio.reissued(stack.labelstudio.token, int(time.time()) + 600)
    result = run_syncd(["once", "-c", str(config_file)], stack, env={"LABEL_STUDIO_API_KEY": ahead}, check=False)
    assert result.returncode == errors.NOPERM, result.stdout[-3000:]
    (failed,) = [e for e in log_events(result.stdout) if e["event"] == "once.connect_failed"]
    assert "Label Studio refused the token (HTTP 401: Token is invalid); the token was issued at" in failed["reason"]
    assert "later than this machine's clock reads" in failed["reason"]
    assert ahead not in result.stdout + result.stderr


def test_listen_address_in_use_exits_78(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "syncd.toml"
        config.write_text(
            f'[[sources]]\nbucket = "b"\n[state]\npath = "{tmp_path / "state.db"}"\n'
            f'[http]\nlisten = "127.0.0.1:{port}"\n[log]\nformat = "json"\n'
        )
        result = subprocess.run(
            [str(VENV_BIN / "syncd"), "run", "-c", str(config)],
            env={**os.environ, "LABEL_STUDIO_API_KEY": "x" * 40},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == errors.CONFIG, result.stdout + result.stderr
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == ["http.bind_failed"]
