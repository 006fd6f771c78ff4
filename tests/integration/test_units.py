"""Review units against the real stack (Label Studio, SeaweedFS, moto's Transcribe with real-shaped output): a
40-minute recording (real audio from sox) with ``max_task_minutes = 15`` becomes three tasks, each with its own clip;
nothing is written beside the audio until every unit is reviewed; the stitched transcript keeps the original times,
and an edit of one unit's review writes it again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from devstack import Stack, log_events, project_tasks, run_syncd, run_until_imported
from devstack.transcribe import TRANSCRIBE_PREFIX, recording_for
from syncd.domain.recording import Status
from syncd.labelstudio import layouts
from syncd.state import StateStore
from syncd.transcribers.aws import job_name

KEY = "depositions/2026-11-30 witness.mp3"
MINUTES = 40
EVERY = 30.0
"""A 19-second segment starts every 30 s: the pauses between them are where units may be cut."""


def _transcribe_output() -> dict[str, Any]:
    """Amazon Transcribe's output (item ids, speaker labels, audio_segments) for 80 segments over 40 minutes."""
    items: list[dict[str, Any]] = []
    segments = []
    start, n = 1.0, 0
    while start + 20 <= MINUTES * 60:
        ids = []
        for k, word in enumerate(("segment", "number", str(n), "spoken")):
            ids.append(len(items))
            items.append(
                {
                    "id": len(items),
                    "type": "pronunciation",
                    "alternatives": [{"confidence": "0.9", "content": word}],
                    "start_time": f"{start + 5 * k:.3f}",
                    "end_time": f"{start + 5 * k + 4:.3f}",
                    "speaker_label": f"spk_{n % 2}",
                }
            )
        ids.append(len(items))
        items.append({"id": len(items), "type": "punctuation", "alternatives": [{"confidence": "0.0", "content": "."}]})
        segments.append(
            {
                "id": n,
                "transcript": f"segment number {n} spoken.",
                "start_time": f"{start:.3f}",
                "end_time": f"{start + 19:.3f}",
                "speaker_label": f"spk_{n % 2}",
                "items": ids,
            }
        )
        start, n = start + EVERY, n + 1
    text = " ".join(s["transcript"] for s in segments)
    return {
        "status": "COMPLETED",
        "results": {"transcripts": [{"transcript": text}], "items": items, "audio_segments": segments},
    }


def _seconds(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True).stdout)


def _outputs(s3: Any, bucket: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=KEY.rsplit(".", 1)[0] + ".transcript")
    return sorted(o["Key"] for o in listed.get("Contents", ()))


def _corrected(task: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """The prediction as a reviewer submits it, with the first segment's text corrected."""
    result = json.loads(json.dumps(task["predictions"][0]["result"]))
    first = next(r for r in result if r["from_name"] == layouts.TEXT)
    first["value"]["text"] = [text]
    return result


def test_a_forty_minute_recording_is_reviewed_as_three_units_and_stitched_with_its_original_times(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    audio = tmp_path / "witness.mp3"
    synth = ["synth", str(MINUTES * 60), "sine", "300", "vol", "0.2"]
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-C", "16", str(audio), *synth], check=True)
    etag = s3.put_object(Bucket=bucket, Key=KEY, Body=audio.read_bytes())["ETag"].strip('"')
    output = json.dumps(_transcribe_output()).encode()
    s3.put_object(
        Bucket=bucket, Key=f"{TRANSCRIBE_PREFIX}{job_name(recording_for(bucket, KEY, etag))}.json", Body=output
    )
    title = f"units {bucket}"
    config = tmp_path / "units.toml"
    extra = "[review]\nmax_task_minutes = 15\n"
    config.write_text(stack.config(tmp_path, bucket, project=title, engine="aws", extra=extra))

    events = run_until_imported(stack, config, expected=3)
    state = StateStore(str(tmp_path / "state.db"))
    (parent,) = [r for r in state.recordings.all() if r.key == KEY]
    asr = parent.transcript
    assert parent.status == Status.SPLIT and asr is not None and len(asr.segments) == 80
    (split,) = [e for e in events if e["event"] == "recording.split"]
    assert split["units"] == 3
    units = [u for u, _ in state.recordings.units_of(parent.id)]
    assert [u.status for u in units] == [Status.IMPORTED] * 3

    # Three tasks, none for the whole recording; each names the file and its part and plays its own clip.
    tasks = sorted(project_tasks(ls, title), key=lambda t: t["data"]["key"])
    assert len(tasks) == 3 and not [e for e in events if e["event"] == "audio.discovered" and e["key"] != KEY]
    for n, (task, unit, (start, end)) in enumerate(zip(tasks, units, split["bounds"], strict=True)):
        assert task["data"]["key"].startswith(f"{KEY} (part {n + 1} of 3, ")
        assert task["data"]["audio"] == f"s3://{bucket}/{unit.key}" and unit.key.startswith("syncd/units/")
        clip = tmp_path / f"clip{n}.flac"
        s3.download_file(bucket, unit.key, str(clip))
        assert abs(_seconds(clip) - (end - start)) < 0.001, "the clip is exactly its unit's span"
        first = next(r for r in task["predictions"][0]["result"] if r["from_name"] == layouts.TEXT)
        original = next(s for s in asr.segments if start <= s.start < end)
        assert first["value"]["start"] == round(original.start - start, 3), "regions are on the clip's clock"
        assert end - start <= 15 * 60
    assert split["bounds"][0][0] == 0.0 and abs(split["bounds"][-1][1] - MINUTES * 60) < 0.5, (
        "the last ends with the audio"
    )

    # Two of three units reviewed: nothing partial is written beside the audio.
    fixes = [f"Corrected opening of part {n + 1}." for n in range(3)]
    first_two = [ls.annotations.create(id=t["id"], result=_corrected(t, fixes[n])) for n, t in enumerate(tasks[:2])]
    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
    assert sum(e["event"] == "unit.reviewed" for e in events) == 2
    assert _outputs(s3, bucket) == []

    # The last unit reviewed: one transcript per format beside the audio, with the recording's own times.
    ls.annotations.create(id=tasks[2]["id"], result=_corrected(tasks[2], fixes[2]))
    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
    (stitched,) = [e for e in events if e["event"] == "transcript.stitched"]
    assert stitched["units"] == 3 and sorted(stitched["formats"]) == ["json", "srt", "txt", "vtt"]
    stem = KEY.rsplit(".", 1)[0]
    assert _outputs(s3, bucket) == [f"{stem}.transcript.{f}" for f in ("json", "srt", "txt", "vtt")]
    doc = json.loads(s3.get_object(Bucket=bucket, Key=f"{stem}.transcript.json")["Body"].read())
    assert [(s["start"], s["end"]) for s in doc["segments"]] == [(s.start, s.end) for s in asr.segments]
    texts = [s["text"] for s in doc["segments"]]
    firsts = [next(i for i, s in enumerate(asr.segments) if start <= s.start < end) for start, end in split["bounds"]]
    assert [texts[i] for i in firsts] == fixes
    assert texts == [fixes[firsts.index(i)] if i in firsts else s.text for i, s in enumerate(asr.segments)]
    assert doc["source"] == {"bucket": bucket, "key": KEY, "etag": etag}
    assert [u["task"] for u in doc["review"]["units"]] == [t["id"] for t in tasks]
    vtt = s3.get_object(Bucket=bucket, Key=f"{stem}.transcript.vtt")["Body"].read().decode()
    last = asr.segments[-1]
    assert f"00:39:31.000 --> 00:39:50.000\nSpeaker 2: {last.text}" in vtt and last.start == 2371.0

    # An edit of one unit's review writes the recording's transcripts again.
    ls.annotations.update(first_two[1].id, result=_corrected(tasks[1], "Edited later."))
    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
    assert [e["event"] for e in events if e["event"] in ("unit.reviewed", "transcript.stitched")] == [
        "unit.reviewed",
        "transcript.stitched",
    ]
    doc = json.loads(s3.get_object(Bucket=bucket, Key=f"{stem}.transcript.json")["Body"].read())
    assert doc["segments"][firsts[1]]["text"] == "Edited later." and doc["segments"][firsts[0]]["text"] == fixes[0]
