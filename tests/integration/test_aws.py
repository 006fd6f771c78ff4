"""Amazon Transcribe path: jobs on a moto server, real-shaped output JSON in real S3, tasks in Label Studio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack import (
    TRANSCRIBE_FIXTURES,
    Stack,
    aws_config,
    log_events,
    project_tasks,
    run_syncd,
    run_until_imported,
    seed_formula,
    upload_with_results,
)
from syncd.domain.recording import syncd_id
from syncd.state import StateStore

RECORDINGS = {
    "calls/2026/support call.mp3": "two_speakers.json",
    "calls/2026/b.wav": "two_speakers_new.json",
    "calls/c.flac": "single_speaker.json",
    "interviews/entrevista.m4a": "spanish.json",
}


def test_transcribe_jobs_results_and_tasks(stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path) -> None:
    names = upload_with_results(s3, bucket, RECORDINGS)
    config = aws_config(stack, tmp_path, bucket, "aws jobs", aws="max_in_flight = 2\nmax_speakers = 3")

    events = run_until_imported(stack, config, expected=len(RECORDINGS))

    # Jobs: deterministic names, the media format of each object, our output location, speakers, language detection.
    transcribe = stack.moto.client()
    for key, name in names.items():
        job = transcribe.get_transcription_job(TranscriptionJobName=name)["TranscriptionJob"]
        assert job["Media"]["MediaFileUri"] == f"s3://{bucket}/{key}"
        assert job["MediaFormat"] == key.rsplit(".", 1)[1]
        assert job["Settings"]["ShowSpeakerLabels"] is True and job["Settings"]["MaxSpeakerLabels"] == 3
        assert job.get("IdentifyLanguage") is True
    # Never more than max_in_flight jobs running at once.
    running, peak = 0, 0
    for e in events:
        running += {"transcription.submitted": 1, "transcription.completed": -1}.get(e["event"], 0)
        peak = max(peak, running)
    assert peak == 2

    # Tasks: one per recording, scored with the seed's formula, speakers as labels, language from the output.
    tasks = {t["data"]["source"]: t for t in project_tasks(ls, "aws jobs")}
    assert sorted(tasks) == sorted(f"s3://{bucket}/{k}" for k in RECORDINGS)
    for key, fixture in RECORDINGS.items():
        task = tasks[f"s3://{bucket}/{key}"]
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "amazon-transcribe"
        assert prediction["score"] == pytest.approx(seed_formula(fixture), abs=1e-4)
        text = json.loads((TRANSCRIBE_FIXTURES / fixture).read_text())["results"]["transcripts"][0]["transcript"]
        regions = [i["value"]["text"][0] for i in prediction["result"] if i["from_name"] == "transcription"]
        assert " ".join(regions) == text
    speakers = {
        i["value"]["labels"][0]
        for i in tasks[f"s3://{bucket}/calls/2026/support call.mp3"]["predictions"][0]["result"]
        if i["from_name"] == "speaker"
    }
    assert speakers == {"Speaker 1", "Speaker 2"}
    assert tasks[f"s3://{bucket}/interviews/entrevista.m4a"]["data"]["language"] == "es-ES"

    # Transcribe's own output is never taken for audio, and a second pass starts no job and imports nothing.
    state = StateStore(str(tmp_path / "state.db"))
    assert {r.key for r in state.recordings.all()} == set(RECORDINGS)
    run_syncd(["once", "-c", str(config)], stack)
    jobs = transcribe.list_transcription_jobs(MaxResults=100)["TranscriptionJobSummaries"]
    assert sorted(j["TranscriptionJobName"] for j in jobs if j["TranscriptionJobName"] in names.values()) == sorted(
        names.values()
    )
    assert len(project_tasks(ls, "aws jobs")) == len(RECORDINGS)


def test_crash_after_start_adopts_the_running_job(stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path) -> None:
    recordings = {"calls/a.mp3": "single_speaker.json"}
    names = upload_with_results(s3, bucket, recordings)
    config = aws_config(stack, tmp_path, bucket, "aws crash")

    crashed = run_syncd(
        ["once", "-c", str(config)], stack, env={"SYNCD_CRASH_AT": "transcribe.after_start"}, check=False
    )
    assert crashed.returncode == -9
    state = StateStore(str(tmp_path / "state.db"))
    (rec,) = state.recordings.all()
    assert rec.status == "discovered" and rec.job_name is None, "the crash came before the state commit"

    run_until_imported(stack, config, expected=1)
    (rec,) = state.recordings.all()
    assert rec.status == "imported" and rec.job_name == names["calls/a.mp3"]
    jobs = stack.moto.client().list_transcription_jobs(JobNameContains=rec.syncd_id)["TranscriptionJobSummaries"]
    assert len(jobs) == 1
    assert rec.syncd_id == syncd_id(bucket, "calls/a.mp3", rec.etag)


def test_pii_redaction_reaches_the_job_the_reviewer_and_the_outputs(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    upload_with_results(s3, bucket, {"calls/card.mp3": "redacted.json"})
    title = f"pii {bucket}"
    config = aws_config(stack, tmp_path, bucket, title, aws='redact_pii = true\npii_entity_types = ["NAME", "PHONE"]')
    run_until_imported(stack, config, expected=1)

    jobs = requests.get(f"{stack.moto.url}/moto-api/data.json", timeout=10).json()["transcribe"]["FakeTranscriptionJob"]
    [job] = [j for j in jobs if j["media"]["MediaFileUri"] == f"s3://{bucket}/calls/card.mp3"]
    assert job["content_redaction"] == {
        "RedactionType": "PII",
        "RedactionOutput": "redacted",
        "PiiEntityTypes": ["NAME", "PHONE"],
    }
    [task] = project_tasks(ls, title)
    assert task["data"]["redacted"] is True and task["data"]["segments_to_check"].endswith("· PII redacted")
    result = task["predictions"][0]["result"]
    shown = " ".join(i["value"]["text"][0] for i in result if i["from_name"] == "transcription")
    assert shown.count("[PII]") == 4 and "my name is [PII]." in shown

    ls.annotations.create(id=task["id"], result=result, was_cancelled=False)
    run_syncd(["once", "-c", str(config)], stack)
    doc = json.loads(s3.get_object(Bucket=bucket, Key="calls/card.transcript.json")["Body"].read())
    assert doc["asr"]["redaction"]["redacted_words"] == 4 and doc["text"].count("[PII]") == 4
    vtt = s3.get_object(Bucket=bucket, Key="calls/card.transcript.vtt")["Body"].read().decode()
    assert vtt.startswith("WEBVTT\n\nNOTE Redacted:")
    for fmt in ("txt", "json", "srt", "vtt"):
        assert s3.head_object(Bucket=bucket, Key=f"calls/card.transcript.{fmt}")["Metadata"]["syncd-redacted"] == "PII"


def test_a_name_reviewers_add_reaches_the_vocabulary_file_and_the_next_job(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    before = upload_with_results(
        s3, bucket, {"calls/a.mp3": "single_speaker.json", "calls/b.mp3": "single_speaker.json"}
    )
    title, vocabulary = f"vocab {bucket}", f"reviewers-{bucket}"
    config = aws_config(stack, tmp_path, bucket, title, aws=f'vocabulary_name = "{vocabulary}"')
    config.write_text(config.read_text().replace('engine = "aws"\n', 'engine = "aws"\nlanguage = "en-US"\n'))
    run_until_imported(stack, config, expected=2)

    # Both reviewers add the caller's name, which the ASR never heard.
    for task in project_tasks(ls, title):
        result = task["predictions"][0]["result"]
        last = [r for r in result if r["from_name"] == "transcription"][-1]
        last["value"]["text"] = [last["value"]["text"][0].replace("Friday.", "Friday, Kowalczyk.")]
        ls.annotations.create(id=task["id"], result=result, was_cancelled=False)
    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
    assert [e["top"] for e in events if e["event"] == "vocabulary.updated"] == [["Kowalczyk"]], [
        e for e in events if e["event"].startswith(("vocabulary", "annotation", "export"))
    ]
    body = s3.get_object(Bucket=bucket, Key="syncd/vocabulary.txt")["Body"].read().decode()
    assert body == "Kowalczyk\t2\n"

    transcribe = stack.moto.client()
    state = ""
    for _ in range(10):
        state = transcribe.get_vocabulary(VocabularyName=vocabulary)["VocabularyState"]
        if state == "READY":
            break
    assert state == "READY"
    data = requests.get(f"{stack.moto.url}/moto-api/data.json", timeout=10).json()["transcribe"]["FakeVocabulary"]
    [kept] = [v for v in data if v["vocabulary_name"] == vocabulary]
    assert kept["phrases"] == ["Kowalczyk"] and kept["language_code"] == "en-US"

    names = upload_with_results(s3, bucket, {"calls/c.mp3": "single_speaker.json"})
    run_until_imported(stack, config, expected=1)
    job = transcribe.get_transcription_job(TranscriptionJobName=names["calls/c.mp3"])["TranscriptionJob"]
    assert job["Settings"]["VocabularyName"] == vocabulary
    first = transcribe.get_transcription_job(TranscriptionJobName=before["calls/a.mp3"])
    assert "VocabularyName" not in first["TranscriptionJob"]["Settings"], "jobs before it ran without it"
