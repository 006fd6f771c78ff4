"""Vocabulary feedback in-process: which words count as added, the file and the engines it reaches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from structlog.testing import capture_logs

from syncd.config import S3Settings, TranscriberSettings, WhisperSettings, parse
from syncd.errors import ConfigError
from syncd.pipeline import run_cycle
from syncd.s3.storage import Storage
from syncd.stages.export_vocabulary import added_words
from syncd.transcribers.aws import AwsTranscriber
from syncd.transcribers.whisper import WhisperTranscriber
from tests.unit.fakes import recording, services


def test_added_words_are_new_words_with_letters_only() -> None:
    asr = "please call mister kowalski at zyxel about order 4411 today"
    reviewed = "Please call Mr Kowalczyk at Zyxel about order 4411-B today, re: O'Brien's Wi-Fi"
    assert added_words(reviewed, asr) == {"Kowalczyk", "O'Brien's"}
    assert added_words(asr, asr) == set()


def test_words_added_in_enough_reviews_reach_the_file_and_the_engine(tmp_path: Path) -> None:
    svc, ls, storage, engine = services(tmp_path, review={"vocabulary_min_reviews": 2})
    engine.words = "please call mister kowalski today"
    for key in ("a.mp3", "b.mp3", "c.mp3"):
        storage.put_audio("b", key, key.encode())
    run_cycle(svc)
    tasks = sorted(ls.tasks)
    ls.annotate(tasks[0], "please call mister Kowalczyk today about Zyxel")
    with capture_logs() as logs:
        run_cycle(svc)
    assert svc.state.reports.vocabulary() == [] and "syncd/vocabulary.txt" not in storage.keys("b"), (
        "one review is not enough"
    )
    assert not [e for e in logs if e["event"] == "vocabulary.updated"]

    ls.annotate(tasks[1], "please call Kowalczyk today")
    with capture_logs() as logs:
        run_cycle(svc)
    assert svc.state.reports.vocabulary() == ["Kowalczyk"]
    assert storage.text("b", "syncd/vocabulary.txt") == "Kowalczyk\t2\n"
    assert [e["words"] for e in logs if e["event"] == "vocabulary.updated"] == [1]
    storage.put_audio("b", "d.mp3")
    run_cycle(svc)
    assert engine.vocabulary == ["Kowalczyk"], "the next transcription run hands it to the engine"

    ls.annotate(tasks[1], "please call mister kowalski today")  # the edit takes the word back
    run_cycle(svc)
    assert svc.state.reports.vocabulary() == [] and storage.text("b", "syncd/vocabulary.txt") == ""


def test_whisper_hotwords_only_when_asked() -> None:
    quiet = WhisperTranscriber(WhisperSettings(), None)  # type: ignore[arg-type]
    quiet.use_vocabulary(["Kowalczyk"])
    assert quiet.hotwords is None
    asked = WhisperTranscriber(WhisperSettings(hotwords_from_reviews=True), None)  # type: ignore[arg-type]
    asked.use_vocabulary([f"w{i}" for i in range(80)])
    assert asked.hotwords is not None and asked.hotwords.split() == [f"w{i}" for i in range(50)]
    seen: dict[str, Any] = {}

    class Model:
        def transcribe(self, samples: Any, **options: Any) -> tuple[list[Any], None]:
            seen.update(options)
            return [], None

    asked._decode(Model(), None, "en")  # type: ignore[arg-type]
    assert seen["hotwords"] == asked.hotwords


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> AwsTranscriber:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    settings = TranscriberSettings.model_validate(
        {"engine": "aws", "language": "en-US", "aws": {"vocabulary_name": "reviewers"}}
    )
    return AwsTranscriber(settings, S3Settings(), Storage(S3Settings()))


def test_transcribe_vocabulary_is_created_then_updated_and_used_once_ready(aws: AwsTranscriber) -> None:
    with Stubber(aws.client) as stub:
        stub.add_response("get_vocabulary", {"VocabularyName": "reviewers", "VocabularyState": "PENDING"})
        assert "VocabularyName" not in aws.job_request(recording())["Settings"]
        stub.add_client_error("get_vocabulary", "BadRequestException", "The requested vocabulary couldn't be found")
        stub.add_response(
            "create_vocabulary",
            {"VocabularyName": "reviewers", "VocabularyState": "PENDING"},
            {"VocabularyName": "reviewers", "LanguageCode": "en-US", "Phrases": ["Kowalczyk"]},
        )
        aws.publish_vocabulary(["Kowalczyk"])
        stub.add_response("get_vocabulary", {"VocabularyName": "reviewers", "VocabularyState": "READY"})
        assert aws.job_request(recording())["Settings"]["VocabularyName"] == "reviewers"
        assert aws.job_request(recording())["Settings"]["VocabularyName"] == "reviewers", "checked once a minute"
        stub.add_response("get_vocabulary", {"VocabularyName": "reviewers", "VocabularyState": "READY"})
        stub.add_response(
            "update_vocabulary",
            {"VocabularyName": "reviewers", "VocabularyState": "PENDING"},
            {"VocabularyName": "reviewers", "LanguageCode": "en-US", "Phrases": ["Kowalczyk", "Zyxel"]},
        )
        aws.publish_vocabulary(["Kowalczyk", "Zyxel"])
        stub.assert_no_pending_responses()


def test_a_transcribe_vocabulary_needs_a_language() -> None:
    raw = {"sources": [{"bucket": "b"}], "transcriber": {"engine": "aws", "aws": {"vocabulary_name": "v"}}}
    with pytest.raises(ConfigError, match=r"vocabulary_name needs transcriber\.language"):
        parse(raw)


def test_a_vocabulary_that_cannot_be_written_is_retried_later_not_every_run(tmp_path: Path) -> None:
    svc, ls, storage, engine = services(tmp_path, review={"vocabulary_min_reviews": 1})
    engine.words = "call mister kowalski"
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(next(iter(ls.tasks)), "call Kowalczyk")
    real_write = storage.write

    def refuse_the_vocabulary(bucket: str, key: str, *args: Any, **kwargs: Any) -> str:
        if key == "syncd/vocabulary.txt":
            raise PermissionError("AccessDenied")
        return real_write(bucket, key, *args, **kwargs)

    storage.write = refuse_the_vocabulary  # type: ignore[method-assign]
    with capture_logs() as logs:
        run_cycle(svc)
        run_cycle(svc)
    failed = [e for e in logs if e["event"] == "vocabulary.update_failed"]
    assert len(failed) == 1 and "AccessDenied" in failed[0]["error"] and failed[0]["log_level"] == "error"
    storage.write = real_write  # type: ignore[method-assign]
    svc.state.cursors.set("vocabulary-retry-at", "1")  # the retry time has come
    run_cycle(svc)
    assert svc.state.reports.vocabulary() == ["Kowalczyk"]


def test_the_words_are_counted_again_only_after_a_review_changed_them(tmp_path: Path) -> None:
    svc, ls, storage, engine = services(tmp_path, review={"vocabulary_min_reviews": 1})
    engine.words = "call mister kowalski"
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    counted = []
    real_top = svc.state.reports.top_added_words
    svc.state.reports.top_added_words = lambda *a: counted.append(a) or real_top(*a)  # type: ignore[method-assign]
    run_cycle(svc)
    run_cycle(svc)
    assert counted == [], "an idle export run never counts the words"
    ls.annotate(next(iter(ls.tasks)), "call Kowalczyk")
    run_cycle(svc)
    run_cycle(svc)
    assert len(counted) == 1 and svc.state.reports.vocabulary() == ["Kowalczyk"]
