"""The faster-whisper engine for real (bundled tiny.en, espeak-ng speech, SeaweedFS, Label Studio) through `syncd once`.

Kept short for a 2-core machine: the long recording is 2.7 minutes with 60-second windows, so it crosses two window
boundaries and reports progress twice; a 10-minute recording with the default 600 s window behaves the same per window
(heartbeats every PROGRESS_EVERY seconds of work within a window, and at each window's end).
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from devstack import SENTENCES, Stack, SyncdProcess, log_events, notify_socket, project_tasks, run_syncd, speak
from syncd.domain.formats import word_error_rate
from syncd.state import StateStore

LONG_SCRIPT = (
    "Good morning and welcome to the quarterly planning call. "
    "First we will look at the budget, then at the hiring plan, and last at the office move. "
    "The budget for the next quarter is higher than the last one because of the new project. "
    "We hired three engineers and one designer, and we are still looking for a product manager. "
    "The office move is planned for the first week of next month, so please pack your desks on Friday. "
)


def _config(stack: Stack, tmp_path: Path, bucket: str, title: str, whisper: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(stack.config(tmp_path, bucket, project=title, extra=f"[transcriber.whisper]\n{whisper}\n"))
    return path


def _sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True)


def _heard(state: StateStore) -> dict[str, Any]:
    return {r.key: r.transcript for r in state.recordings.all() if r.transcript is not None}


def test_two_workers_transcribe_each_recording_once(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    keys = {f"calls/{n}.mp3": SENTENCES[n % len(SENTENCES)] for n in range(6)}
    for key, sentence in keys.items():
        s3.upload_file(str(speak(sentence, tmp_path / key)), bucket, key)
    title = "whisper two workers"
    config = _config(stack, tmp_path, bucket, title, "workers = 2\nbatch_size = 1")

    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)

    decoded = Counter(e["key"] for e in events if e["event"] == "transcription.decoding")
    assert decoded == dict.fromkeys(keys, 1)
    assert {e["worker"] for e in events if e["event"] == "transcription.decoding"} <= {
        "whisper-worker-0",
        "whisper-worker-1",
    }
    completed = Counter(e["key"] for e in events if e["event"] == "transcription.completed")
    assert completed == dict.fromkeys(keys, 1)
    tasks = project_tasks(ls, title)
    assert sorted(t["data"]["audio"] for t in tasks) == sorted(f"s3://{bucket}/{k}" for k in keys)
    for key, transcript in _heard(StateStore(str(tmp_path / "state.db"))).items():
        wer = word_error_rate(keys[key], transcript.text)
        assert wer is not None and wer <= 0.35, (key, transcript.text)  # each file got its own text, not another's
    assert {t["predictions"][0]["model_version"] for t in tasks} == {"whisper-tiny.en-int8"}


def test_a_long_recording_reports_progress_and_keeps_word_times(
    stack: Stack, s3: Any, bucket: str, tmp_path: Path
) -> None:
    speak(LONG_SCRIPT, tmp_path / "part.wav")
    _sox(*[str(tmp_path / "part.wav")] * 7, str(tmp_path / "long.mp3"))  # about 2.7 minutes of speech
    s3.upload_file(str(tmp_path / "long.mp3"), bucket, "meetings/long.mp3")
    config = _config(stack, tmp_path, bucket, "whisper long", "window_seconds = 60")

    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)

    progress = [e for e in events if e["event"] == "transcription.progress"]
    percents = [e["percent"] for e in progress]
    assert len(progress) >= 2 and percents == sorted(percents) and percents[0] > 0 and percents[-1] < 100
    names = [e["event"] for e in events]
    assert names.index("transcription.progress") < names.index("transcription.completed")
    (transcript,) = _heard(StateStore(str(tmp_path / "state.db"))).values()
    assert transcript.duration > 120
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts) and starts[0] >= 0 and transcript.words[-1].end <= transcript.duration
    wer = word_error_rate(LONG_SCRIPT * 7, transcript.text)
    assert wer is not None and wer <= 0.25, transcript.text  # nothing lost or doubled where windows meet


def test_split_channels_label_each_speaker(stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path) -> None:
    left, right = SENTENCES[0], SENTENCES[2]
    speak(left, tmp_path / "left.wav")
    speak(right, tmp_path / "right0.wav")
    _sox(str(tmp_path / "right0.wav"), str(tmp_path / "right.wav"), "pad", "5", "0")  # answers after the question
    _sox("-M", str(tmp_path / "left.wav"), str(tmp_path / "right.wav"), str(tmp_path / "call.wav"))
    s3.upload_file(str(tmp_path / "call.wav"), bucket, "calls/call.wav")
    title = "whisper split channels"
    config = _config(stack, tmp_path, bucket, title, 'channels = "split"')

    run_syncd(["once", "-c", str(config)], stack)

    (transcript,) = _heard(StateStore(str(tmp_path / "state.db"))).values()
    by_speaker = {s: " ".join(x.text for x in transcript.segments if x.speaker == s) for s in ("ch_0", "ch_1")}
    assert (word_error_rate(left, by_speaker["ch_0"]) or 0) <= 0.35, by_speaker
    assert (word_error_rate(right, by_speaker["ch_1"]) or 0) <= 0.35, by_speaker
    assert [s.start for s in transcript.segments] == sorted(s.start for s in transcript.segments)
    (task,) = project_tasks(ls, title)
    labels = {i["value"]["labels"][0] for i in task["predictions"][0]["result"] if i["from_name"] == "speaker"}
    assert labels == {"Channel 1", "Channel 2"}
    assert task["data"]["language"] == "en"


def test_vad_skips_silence_and_keeps_every_word(stack: Stack, s3: Any, bucket: str, tmp_path: Path) -> None:
    parts = []
    for n, sentence in enumerate(SENTENCES[:3]):
        parts.append(str(speak(sentence, tmp_path / f"s{n}.wav")))
        _sox("-n", "-r", "22050", "-c", "1", str(tmp_path / f"gap{n}.wav"), "trim", "0", "20")
        parts.append(str(tmp_path / f"gap{n}.wav"))
    _sox(*parts[:-1], str(tmp_path / "gaps.mp3"))  # three sentences with 20 s of silence between them
    s3.upload_file(str(tmp_path / "gaps.mp3"), bucket, "calls/gaps.mp3")
    config = _config(stack, tmp_path, bucket, "whisper vad", "vad_filter = true")

    run_syncd(["once", "-c", str(config)], stack)

    (transcript,) = _heard(StateStore(str(tmp_path / "state.db"))).values()
    heard: list[list[str]] = []
    last_end = -100.0
    for word in transcript.words:
        if word.start - last_end > 10:  # the 20 s gaps part the words into one group per sentence
            heard.append([])
        heard[-1].append(word.text)
        last_end = word.end
    assert len(heard) == 3, heard
    for sentence, words in zip(SENTENCES[:3], heard, strict=True):
        wer = word_error_rate(sentence, " ".join(words))
        assert wer is not None and wer <= 0.35, (sentence, words)
    assert transcript.extra["speech_seconds"] < transcript.duration / 2  # most of the silence was never decoded


def test_a_ten_minute_recording_keeps_the_watchdog_fed(stack: Stack, s3: Any, bucket: str, tmp_path: Path) -> None:
    """`syncd run` under a 60 s systemd watchdog transcribes a 10-minute recording. The stage's silence limit is
    15 s here, far shorter than the transcription, so only the progress heartbeats keep the stage from counting as
    stuck (which would withhold the pings and have systemd restart syncd)."""
    speak(LONG_SCRIPT, tmp_path / "part.wav")
    part = float(subprocess.run(["soxi", "-D", str(tmp_path / "part.wav")], capture_output=True, text=True).stdout)
    _sox(*[str(tmp_path / "part.wav")] * (int(600 / part) + 1), str(tmp_path / "ten.mp3"))
    s3.upload_file(str(tmp_path / "ten.mp3"), bucket, "meetings/ten.mp3")
    config = _config(stack, tmp_path, bucket, "whisper ten minutes", "window_seconds = 120")
    schedule = "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nstage_timeout = 15\n"
    config.write_text(config.read_text() + schedule)
    path = tmp_path / "notify.sock"
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "60000000"}
    with notify_socket(path) as messages:
        daemon = SyncdProcess(config, stack, env=env)
        try:
            finished = daemon.wait("transcription.completed", timeout=400)
            assert daemon.proc.poll() is None
        finally:
            daemon.kill()

    names = [e["event"] for e in daemon.events[: finished + 1]]
    assert "stage.stuck" not in names
    progress = [e for e in daemon.events[:finished] if e["event"] == "transcription.progress"]
    assert len(progress) >= 4 and progress[-1]["audio_seconds"] >= 480, progress
    assert daemon.events[finished]["duration"] >= 600
    started = next(i for i, m in enumerate(messages) if m.startswith("READY=1"))
    assert messages[started:].count("WATCHDOG=1") >= 1, messages
