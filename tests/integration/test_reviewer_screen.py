"""The reviewer's screen, tried as a reviewer would: headless Chromium (Debian's, with its driver) under Selenium,
against the real stack (Label Studio 1.23.2, SeaweedFS, moto for Amazon Transcribe, the `syncd` CLI as a subprocess).

The audio is real speech (espeak-ng); the Transcribe output beside it is written here with chosen confidences, so the
least-confident task and its low-confidence segments are known. ``SYNCD_SCREENSHOTS=docs`` also saves the screenshots
the README shows.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt

from devstack import (
    LS_PASSWORD,
    LS_USER,
    Stack,
    aws_config,
    call_sentences,
    log_events,
    long_call,
    run_syncd,
    run_until_imported,
    speak,
)
from devstack.transcribe import TRANSCRIBE_PREFIX, project_tasks, recording_for
from syncd.labelstudio import as_dict, layouts
from syncd.labelstudio.client import VIEW_TITLE
from syncd.transcribers.aws import job_name

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

Turn = tuple[str, str, float, str]  # speaker, ASR text, confidence, what the voice says
CALL = "calls/2026-11-24/support call 0142.mp3"
CALL_TURNS: list[Turn] = [
    ("spk_0", "Thank you for calling customer support, how can I help you today?", 0.93, ""),
    (
        "spk_1",
        "Hi, my wife fight router stopped working this morning.",
        0.48,
        "Hi, my Wi-Fi router stopped working this morning.",
    ),
    ("spk_0", "I am sorry to hear that. Can you read me the serial number?", 0.88, ""),
    ("spk_1", "It is for eight two, nine seven.", 0.52, "It is four eight two, nine seven."),
    ("spk_0", "Thanks. Please unplug it for ten seconds and plug it back in.", 0.9, ""),
]
INVOICE = "calls/2026-11-24/invoice question.mp3"
INVOICE_TURNS: list[Turn] = [
    ("spk_0", "Please send the invoice to the accounting department by Friday.", 0.95, ""),
    ("spk_1", "We need to review the contract before we sign it.", 0.91, ""),
]
CORRECTED = "Hi, my Wi-Fi router stopped working this morning."
MISHEARD = 0.3  # the confidence of each word the voice did not say: "wife", "fight", "for" (flagged below 0.5)
WAIT = 60  # seconds any one browser step may take on a loaded 2-core machine
TEXTS = ".lsf-outliner-item [data-testid=textarea-region-textarea]"  # each region's text in the region list


def _transcribe_output(turns: list[Turn], durations: list[float]) -> dict[str, Any]:
    """Amazon Transcribe's output (the newer shape: item ids, speaker labels, audio_segments), one audio segment per
    turn, words spread over the turn's spoken duration. A word the voice did not say (misheard) scores MISHEARD, the
    others of its turn enough to keep the turn's mean confidence."""
    items: list[dict[str, Any]] = []
    segments = []
    start = 0.2
    for (speaker, text, confidence, said), duration in zip(turns, durations, strict=True):
        words, ids = text.split(), []
        step = (duration - 0.4) / len(words)
        scores = _word_scores([w.strip(",.?!") for w in words], said, confidence)
        for n, word in enumerate(words):
            core, punct = (word[:-1], word[-1]) if word[-1] in ",.?!" else (word, "")
            t = start + n * step
            ids.append(len(items))
            items.append(
                {
                    "id": len(items),
                    "type": "pronunciation",
                    "alternatives": [{"confidence": f"{scores[n]:.4f}", "content": core}],
                    "start_time": f"{t:.3f}",
                    "end_time": f"{t + 0.9 * step:.3f}",
                    "speaker_label": speaker,
                }
            )
            if punct:
                ids.append(len(items))
                alternative = {"confidence": "0.0", "content": punct}
                items.append({"id": len(items), "type": "punctuation", "alternatives": [alternative]})
        end = start + duration - 0.4
        segments.append(
            {
                "id": len(segments),
                "transcript": text,
                "start_time": f"{start:.3f}",
                "end_time": f"{end:.3f}",
                "speaker_label": speaker,
                "items": ids,
            }
        )
        start += duration
    transcript = " ".join(t[1] for t in turns)
    return {
        "status": "COMPLETED",
        "results": {"transcripts": [{"transcript": transcript}], "items": items, "audio_segments": segments},
    }


def _word_scores(words: list[str], said: str, mean: float) -> list[float]:
    heard = {w.strip(",.?!").lower() for w in said.split()}
    misheard = [bool(said) and w.lower() not in heard for w in words]
    rest = (mean * len(words) - MISHEARD * sum(misheard)) / (len(words) - sum(misheard))
    return [MISHEARD if m else rest for m in misheard]


def _upload_call(s3: Any, bucket: str, key: str, turns: list[Turn], tmp_path: Path) -> None:
    """Spoken audio (one espeak-ng clip per turn, joined) and, where our Transcribe job will look, its output."""
    clips = [speak(said or text, tmp_path / f"{abs(hash((key, n)))}.wav") for n, (_, text, _, said) in enumerate(turns)]
    mp3 = tmp_path / f"{abs(hash(key))}.mp3"
    subprocess.run(["sox", *map(str, clips), str(mp3)], check=True, capture_output=True)
    durations = [
        float(subprocess.run(["soxi", "-D", str(c)], check=True, capture_output=True, text=True).stdout) for c in clips
    ]
    _put_call(s3, bucket, key, mp3.read_bytes(), turns, durations)


def _put_call(s3: Any, bucket: str, key: str, audio: bytes, turns: list[Turn], durations: list[float]) -> None:
    etag = s3.put_object(Bucket=bucket, Key=key, Body=audio)["ETag"].strip('"')
    output = json.dumps(_transcribe_output(turns, durations)).encode()
    s3.put_object(
        Bucket=bucket, Key=f"{TRANSCRIBE_PREFIX}{job_name(recording_for(bucket, key, etag))}.json", Body=output
    )


def _chrome(width: int, height: int) -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromium-driver (Debian) are missing: run scripts/stack-install.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--mute-audio"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    chrome.set_page_load_timeout(WAIT)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    yield from _chrome(1500, 1350)


@pytest.fixture
def reviewer_window() -> Iterator[WebDriver]:
    """A reviewer's window: 1600x1000."""
    yield from _chrome(1600, 1000)


def _wait(browser: WebDriver, what: str, until: Any) -> Any:
    try:
        return WebDriverWait(browser, WAIT, poll_frequency=0.25).until(until)
    except TimeoutException:
        texts = _segment_texts(browser)
        raise AssertionError(f"browser: {what} did not happen; texts {texts}; page:\n{_body(browser)[:2000]}") from None


def _body(browser: WebDriver) -> str:
    return str(browser.find_element(By.TAG_NAME, "body").text)


def _login(browser: WebDriver, url: str) -> None:
    browser.get(f"{url}/user/login/")
    browser.find_element(By.NAME, "email").send_keys(LS_USER)
    browser.find_element(By.NAME, "password").send_keys(LS_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, "login", lambda b: "/user/login" not in b.current_url)


def _screenshot(browser: WebDriver, name: str, height: int = 0) -> None:
    """Save what the reviewer sees when SYNCD_SCREENSHOTS names a folder; ``height`` crops to the top of the page."""
    folder = os.environ.get("SYNCD_SCREENSHOTS")
    if not folder:
        return
    size = browser.get_window_size()
    if height:
        browser.set_window_size(size["width"], height)
    browser.save_screenshot(str(Path(folder) / name))
    browser.set_window_size(size["width"], size["height"])


def _segment_texts(browser: WebDriver) -> list[str]:
    return [str(t.get_attribute("value")) for t in browser.find_elements(By.CSS_SELECTOR, TEXTS)]


def _text_box(browser: WebDriver, text: str) -> Any:
    """A segment's text field, by its text: the region list renders only the rows in view, so indexes shift."""
    return next(t for t in browser.find_elements(By.CSS_SELECTOR, TEXTS) if t.get_attribute("value") == text)


def _open_data_manager(browser: WebDriver, stack: Stack, ls: Any, project: int) -> None:
    views = [as_dict(v) for v in ls.views.list(project=project)]
    (view,) = [v for v in views if v["data"]["title"] == VIEW_TITLE]
    browser.get(f"{stack.labelstudio.url}/projects/{project}/data?tab={view['id']}")
    _wait(browser, "the saved view lists both recordings", lambda b: CALL in _body(b) and INVOICE in _body(b))


def test_reviewer_reads_every_segment_and_corrects_one_in_the_browser(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path, browser: WebDriver
) -> None:
    _upload_call(s3, bucket, CALL, CALL_TURNS, tmp_path)
    _upload_call(s3, bucket, INVOICE, INVOICE_TURNS, tmp_path)
    title = "Support calls"
    config = aws_config(stack, tmp_path, bucket, title)
    run_until_imported(stack, config, expected=2)
    project = next(int(p.id) for p in ls.projects.list() if p.title == title)

    # The Data Manager: the saved view names each recording by its key, least confident first.
    _login(browser, stack.labelstudio.url)
    _open_data_manager(browser, stack, ls, project)
    body = _body(browser)
    assert body.index(CALL) < body.index(INVOICE), "least confident first"
    assert "s3://" not in body
    for column in ("key", "asr_confidence", "duration", "audio"):
        assert column in body
    _screenshot(browser, "review-data-manager.png", height=560)

    # "Label All Tasks" serves the least confident task; the project's instructions come first.
    browser.find_element(By.XPATH, "//button[normalize-space()='Label All Tasks']").click()
    _wait(browser, "the instructions", lambda b: "Labeling Instructions" in _body(b))
    assert "click into its text, correct it, and press Enter" in _body(browser)
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Close modal']").click()

    # Every segment's text is on screen in reading order, without selecting anything; none is a confidence figure.
    asr_texts = [t[1] for t in CALL_TURNS]
    _wait(browser, "every segment's text", lambda b: _segment_texts(b) == asr_texts)
    header = _body(browser)
    assert CALL in header and "ASR confidence 0.7" in header and "check segments 2, 4" in header
    assert header.count(f"Speaker 2, {layouts.CHECK_LABEL}") == 2, "the two low-confidence segments are marked"
    # The three misheard words are marked on the waveform, listed after the segments (the list shows the rows in
    # view: the first mark is region 6) with no text box of their own: the only text boxes are the five segments'.
    assert "3 words marked" in header and f"6\n{layouts.WORD_LABEL}\n0.30" in header
    _wait(browser, "the waveform", lambda b: "Loading file" not in _body(b))
    _screenshot(browser, "review-segments.png")
    for box in browser.find_elements(By.CSS_SELECTOR, TEXTS):
        browser.execute_script("arguments[0].scrollIntoView({block: 'nearest'})", box)
        assert box.is_displayed() and box.get_attribute("readonly") is None
    assert "ASR confidence 0." not in " ".join(_segment_texts(browser))
    assert not browser.find_elements(By.XPATH, "//button[normalize-space()='Add']"), "no box inviting a second text"

    # The reviewer corrects segment 2 in place and confirms with Enter; no second text box appears for it.
    _text_box(browser, asr_texts[1]).click()
    _wait(browser, "segment 2 selected", lambda b: "seg0001" in _body(b))
    box = _text_box(browser, asr_texts[1])  # the list re-renders (and scrolls) on selection: find it again
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(CORRECTED, Keys.ENTER)
    _wait(browser, "the corrected text", lambda b: CORRECTED in _segment_texts(b))
    assert asr_texts[1] not in _segment_texts(browser)
    expected_texts = [*asr_texts[:1], CORRECTED, *asr_texts[2:]]
    assert not browser.find_elements(By.CSS_SELECTOR, ".lsf-textarea-tag__form"), "one text per region"
    assert not browser.find_elements(By.CSS_SELECTOR, "textarea[placeholder='Text of this segment']")
    browser.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
    task = next(t for t in project_tasks(ls, title) if t["data"]["key"] == CALL)
    _wait(browser, "the submitted annotation", lambda _: ls.annotations.list(task["id"]))

    # What Label Studio stored holds one text per region, and the export writes exactly the corrected text.
    (annotation,) = ls.annotations.list(task["id"])
    stored = [r for r in as_dict(annotation)["result"] if r["from_name"] == layouts.TEXT]
    assert [r["value"]["text"] for r in stored] == [[t] for t in expected_texts]
    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
    assert [e["key"] for e in events if e["event"] == "annotation.exported"] == [CALL]
    assert not [e for e in events if e["event"].startswith("annotation.region")]
    stem = CALL.rsplit(".", 1)[0]
    txt = s3.get_object(Bucket=bucket, Key=f"{stem}.transcript.txt")["Body"].read().decode()
    speakers = ["Speaker 1", "Speaker 2", "Speaker 1", "Speaker 2", "Speaker 1"]
    assert txt == "".join(f"{s}: {t}\n" for s, t in zip(speakers, expected_texts, strict=True))
    doc = json.loads(s3.get_object(Bucket=bucket, Key=f"{stem}.transcript.json")["Body"].read())
    assert [s["text"] for s in doc["segments"]] == expected_texts
    assert doc["segments"][1]["asr_text"] == CALL_TURNS[1][1] and doc["segments"][1]["confidence"] == 0.48


OLD_LABEL_CONFIG = (  # the segments layout as syncd created it before the region list
    "<View>\n"
    '  <Labels name="speaker" toName="audio" choice="single">\n'
    '    <Label value="Speaker 1"/>\n'
    '    <Label value="Speaker 2"/>\n'
    "  </Labels>\n"
    '  <Audio name="audio" value="$audio" hotkey="space"/>\n'
    '  <TextArea name="transcription" toName="audio" perRegion="true" editable="true" rows="2"'
    ' placeholder="Corrected text for this region"/>\n'
    '  <TextArea name="asr_confidence" toName="audio" perRegion="true" editable="false" rows="1"'
    ' maxSubmissions="1"/>\n'
    "</View>"
)


def test_project_with_the_old_layout_still_exports_one_text_per_region(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    """A project created by an earlier syncd keeps its label config. A review done there the way the old screen
    invited (a second text typed into the empty "Add" box) exports one text per region, with a warning."""
    title = "Old layout calls"
    old = ls.projects.create(title=title, label_config=OLD_LABEL_CONFIG)
    old_view = {"title": "Least confident first", "ordering": ["tasks:predictions_score"]}
    ls.views.create(project=old.id, data=old_view)
    _upload_call(s3, bucket, INVOICE, INVOICE_TURNS, tmp_path)
    config = aws_config(stack, tmp_path, bucket, title)
    run_until_imported(stack, config, expected=1)
    project = ls.projects.get(old.id)
    assert project.label_config == OLD_LABEL_CONFIG, "an existing project keeps its layout"
    assert not project.expert_instruction, "instructions for the current layout would mislead on the old one"
    (view,) = [as_dict(v)["data"] for v in ls.views.list(project=old.id)]
    assert view["title"] == VIEW_TITLE and view["ordering"] == ["tasks:predictions_score"]
    assert "tasks:data.key" not in view["hiddenColumns"]["explore"]
    assert "tasks:data.syncd_id" in view["hiddenColumns"]["explore"]
    (task,) = project_tasks(ls, title)
    result = []
    for item in task["predictions"][0]["result"]:
        if item["from_name"] == layouts.TEXT and item["id"] == "seg0001":
            item = {
                **item,
                "value": {**item["value"], "text": [*item["value"]["text"], "We must review the contract."]},
            }
        result.append(item)
        if item["from_name"] == layouts.TEXT:  # the old screen's read-only confidence text
            value = {**item["value"], "text": ["ASR confidence 0.91"]}
            result.append({**item, "from_name": "asr_confidence", "value": value})
    ls.annotations.create(id=task["id"], result=result, was_cancelled=False)

    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
    stem = INVOICE.rsplit(".", 1)[0]
    txt = s3.get_object(Bucket=bucket, Key=f"{stem}.transcript.txt")["Body"].read().decode()
    assert txt == f"Speaker 1: {INVOICE_TURNS[0][1]}\nSpeaker 2: We must review the contract.\n"
    (warning,) = [e for e in events if e["event"] == "annotation.region_texts"]
    assert (warning["key"], warning["region"], warning["texts"]) == (INVOICE, "seg0001", 2)
    assert warning["level"] == "warning" and warning["kept"] == "We must review the contract."


# --- a working day's recording: ten minutes, 80 segments ----------------------------------------------------------

LONG = "calls/2026-11-25/support call 0311.flac"
MISHEARD_AT = {2: ("supplier", "supply her"), 69: ("manager", "man ago")}
"""Segments 3 and 70 (0-based 2 and 69): the word the voice says, and what the recogniser heard instead."""
ROWS = ".syncd-row"
ROW_TEXT = ".syncd-row textarea"


@dataclass
class LongCall:
    audio: bytes
    turns: list[Turn]
    durations: list[float]

    @property
    def said(self) -> list[str]:
        return [said or text for _, text, _, said in self.turns]


@pytest.fixture(scope="session")
def long_call_audio(tmp_path_factory: pytest.TempPathFactory) -> LongCall:
    """Spoken once per test session (espeak-ng, about 3 s): 80 sentences, two voices, 9.8 minutes."""
    sentences = call_sentences(80)
    path = tmp_path_factory.mktemp("long-call") / "call.flac"
    durations = long_call(path, sentences)
    turns: list[Turn] = []
    for n, sentence in enumerate(sentences):
        if n in MISHEARD_AT:
            word, heard = MISHEARD_AT[n]
            assert word in sentence, "the script changed: pick the misheard words again"
            turns.append((f"spk_{n % 2}", sentence.replace(word, heard, 1), 0.55, sentence))
        else:
            turns.append((f"spk_{n % 2}", sentence, 0.93, ""))
    return LongCall(path.read_bytes(), turns, durations)


@dataclass
class Effort:
    """What a review took: clicks, keys pressed to move and act (a chord counts once), characters typed, and
    scrolling in screens of the pane that scrolled (a wheel flick or Page Down moves about one)."""

    clicks: int = 0
    keys: int = 0
    typed: int = 0
    screens: float = 0.0

    def click(self, element: Any) -> None:
        element.click()
        self.clicks += 1

    def press(self, browser: WebDriver, *keys: str, chord: str | None = None) -> None:
        actions = ActionChains(browser)
        if chord:
            actions.key_down(chord)
        for key in keys:
            actions.send_keys(key)
        if chord:
            actions.key_up(chord)
        actions.perform()
        self.keys += 1 if chord else len(keys)

    def type(self, browser: WebDriver, text: str) -> None:
        ActionChains(browser).send_keys(text).perform()
        self.typed += len(text)

    def scroll(self, browser: WebDriver, pane: Any, pixels: float) -> None:
        height = float(browser.execute_script("return arguments[0].clientHeight", pane))
        browser.execute_script("arguments[0].scrollBy(0, arguments[1])", pane, pixels)
        self.screens += abs(pixels) / height

    def __str__(self) -> str:
        moves = f"{self.clicks} clicks, {self.keys} keys, {self.screens:.1f} screens scrolled"
        return f"{moves}, {self.typed} characters typed"


def _main_pane(browser: WebDriver) -> Any:
    return browser.find_element(By.CSS_SELECTOR, ".lsf-main-content")


def _open_first_task(browser: WebDriver, stack: Stack, ls: Any, project: int, effort: Effort, keys: list[str]) -> None:
    """The saved view, then "Label All Tasks" (least confident first), past the instructions."""
    views = [as_dict(v) for v in ls.views.list(project=project)]
    (view,) = [v for v in views if v["data"]["title"] == VIEW_TITLE]
    browser.get(f"{stack.labelstudio.url}/projects/{project}/data?tab={view['id']}")
    _wait(browser, "the saved view lists the recordings", lambda b: all(k in _body(b) for k in keys))
    effort.click(browser.find_element(By.XPATH, "//button[normalize-space()='Label All Tasks']"))
    _wait(browser, "the instructions", lambda b: "Labeling Instructions" in _body(b))
    effort.click(browser.find_element(By.CSS_SELECTOR, "button[aria-label='Close modal']"))


def _find_next(browser: WebDriver, effort: Effort, text: str) -> Any:
    """Ctrl+F, ``text``, Enter: the browser's find bar selects the next match and scrolls it into view. Selenium
    cannot drive the find bar; ``window.find`` selects the same match, and the match is scrolled into view as the
    find bar does. Returns the row the match is in."""
    effort.keys += 2  # Ctrl+F, Enter
    effort.typed += len(text)  # a second search finds the text still there: the caller takes it back
    assert browser.execute_script("return window.find(arguments[0], false, false, true)", text), f"{text!r} found"
    return browser.execute_script(
        "const n = window.getSelection().anchorNode; const row = (n.parentElement || n).closest(arguments[0]);"
        " (n.parentElement || n).scrollIntoView({block: 'center'}); return row",
        ROWS,
    )


def _row_texts(browser: WebDriver) -> list[str]:
    return [str(t.get_attribute("value")) for t in browser.find_elements(By.CSS_SELECTOR, ROW_TEXT)]


def _outputs(s3: Any, bucket: str, key: str) -> dict[str, str]:
    stem = key.rsplit(".", 1)[0]
    return {
        f: s3.get_object(Bucket=bucket, Key=f"{stem}.transcript.{f}")["Body"].read().decode()
        for f in ("txt", "json", "srt", "vtt")
    }


def test_a_ten_minute_call_reads_top_to_bottom_and_two_segments_are_fixed_by_keyboard(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path, reviewer_window: WebDriver, long_call_audio: LongCall
) -> None:
    browser, call = reviewer_window, long_call_audio
    _put_call(s3, bucket, LONG, call.audio, call.turns, call.durations)
    title = "Support calls, transcript"
    config = aws_config(stack, tmp_path, bucket, title, layout="transcript")
    run_until_imported(stack, config, expected=1)
    project = next(int(p.id) for p in ls.projects.list() if p.title == title)
    asr = {t["data"]["key"]: t for t in project_tasks(ls, title)}[LONG]["predictions"][0]["result"]
    asr_texts = [t[1] for t in call.turns]
    assert [r["value"]["text"] for r in asr] == [[t] for t in asr_texts]

    effort = Effort()
    _login(browser, stack.labelstudio.url)
    _open_first_task(browser, stack, ls, project, effort, [LONG])
    opened = time.monotonic()
    _wait(browser, "every segment's text", lambda b: len(_row_texts(b)) == 80)
    _wait(browser, "the texts shown", lambda b: browser.find_elements(By.CSS_SELECTOR, ROW_TEXT)[0].is_displayed())
    shown = time.monotonic() - opened
    header = _body(browser)
    assert LONG in header and "check segments 3, 70" in header

    # The whole transcript is in the main column, in reading order, top to bottom; the side panel holds no text.
    assert _row_texts(browser) == asr_texts
    rows = browser.find_elements(By.CSS_SELECTOR, ROWS)
    tops = [float(browser.execute_script("return arguments[0].getBoundingClientRect().top", r)) for r in rows]
    assert tops == sorted(tops) and len(set(tops)) == 80
    main = _main_pane(browser)
    assert all(main.find_elements(By.CSS_SELECTOR, ROWS)), "rows live in the main column"
    assert not browser.find_elements(By.CSS_SELECTOR, ".lsf-outliner-item"), "no region list to read"
    assert browser.execute_script("return arguments[0].scrollTop", main) == 0, "it opens at the top"
    clipped = browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].filter(t => t.scrollHeight > t.clientHeight + 1).length",
        ROW_TEXT,
    )
    assert clipped == 0, "every text box shows all of its text"
    pane_height = float(browser.execute_script("return arguments[0].clientHeight", main))
    by_scrolling = (tops[69] - tops[0]) / pane_height
    in_view = browser.execute_script(
        "const p = arguments[0].getBoundingClientRect(); return [...document.querySelectorAll(arguments[1])]"
        ".filter(t => { const r = t.getBoundingClientRect(); return r.top >= p.top && r.bottom <= p.bottom }).length",
        main,
        ROW_TEXT,
    )
    cues = [str(r.find_element(By.CSS_SELECTOR, "[data-testid^='phrase:']").text) for r in rows]
    assert [c.count(layouts.CHECK_MARK) for c in cues] == [int(n in MISHEARD_AT) for n in range(80)]
    assert "listen for: supply 0.30, her 0.30" in cues[2] and "\u2713 0.93" in cues[0]
    if os.environ.get("SYNCD_SCREENSHOTS"):  # the waveform of 81 players' audio takes a while here (see README)
        WebDriverWait(browser, 3 * WAIT, poll_frequency=1).until(lambda b: "Loading file" not in _body(b))
        print(f"\nwaveform loaded {time.monotonic() - opened:.0f} s after opening", flush=True)
    _screenshot(browser, "review-transcript.png")

    # Segment 3, found with the browser's find; its play button plays exactly that segment.
    row = _find_next(browser, effort, layouts.CHECK_MARK[:-1])
    assert row.get_attribute("id") == "segment-2"
    box = row.find_element(By.CSS_SELECTOR, "textarea")
    effort.click(box)
    effort.press(browser, Keys.TAB, chord=Keys.SHIFT)
    effort.press(browser, Keys.TAB, chord=Keys.SHIFT)
    play = row.find_element(By.CSS_SELECTOR, "button[aria-label=play]")
    assert browser.switch_to.active_element == play
    player = row.find_element(By.CSS_SELECTOR, "audio")
    _wait(browser, "segment 3's audio", lambda b: b.execute_script("return arguments[0].readyState", player) >= 1)
    effort.press(browser, Keys.SPACE)
    start = call.durations[0] + call.durations[1] + 0.2
    _wait(browser, "segment 3 playing", lambda _: row.find_elements(By.CSS_SELECTOR, "button[aria-label=pause]"))
    playing = browser.execute_script(
        "return [...document.querySelectorAll('audio')].filter(a => !a.paused).map(a => a.currentTime)"
    )
    assert len(playing) == 1 and start <= playing[0] < start + call.durations[2], "that segment, and only it"
    cue = row.find_element(By.CSS_SELECTOR, "[data-testid^='phrase:']")
    assert browser.switch_to.active_element == cue, "the row playing takes the focus (its cue line)"
    effort.press(browser, Keys.TAB)
    assert browser.switch_to.active_element == box
    effort.press(browser, "a", chord=Keys.CONTROL)
    effort.type(browser, call.said[2])

    # Segment 70: find again (Enter in the find bar: the text is kept), edit, then Tab out and Ctrl+Enter submits.
    row = _find_next(browser, effort, layouts.CHECK_MARK[:-1])
    effort.typed -= len(layouts.CHECK_MARK) - 1
    assert row.get_attribute("id") == "segment-69"
    box = row.find_element(By.CSS_SELECTOR, "textarea")
    effort.click(box)
    effort.press(browser, "a", chord=Keys.CONTROL)
    effort.type(browser, call.said[69])
    effort.press(browser, Keys.TAB)
    expected = [*asr_texts]
    expected[2], expected[69] = call.said[2], call.said[69]
    _wait(browser, "both corrections", lambda b: _row_texts(b) == expected)
    effort.press(browser, Keys.ENTER, chord=Keys.CONTROL)
    task = next(t for t in project_tasks(ls, title) if t["data"]["key"] == LONG)
    _wait(browser, "the submitted annotation", lambda _: ls.annotations.list(task["id"]))
    print(f"\ntranscript layout, 10-minute call, segments 3 and 70 fixed: {effort}", flush=True)
    print(f"(texts shown {shown:.0f} s after opening; {time.monotonic() - opened:.0f} s in the task;", flush=True)
    print(f" {in_view} of 80 texts in view at once; segment 70 by scrolling instead: {by_scrolling:.1f} screens)")

    # Label Studio stored one text per segment; the export writes them at the ASR segments' times.
    (annotation,) = ls.annotations.list(task["id"])
    stored = sorted(as_dict(annotation)["result"], key=lambda r: int(r["from_name"].split("_")[1]))
    assert [r["value"]["text"] for r in stored] == [[t] for t in expected]
    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
    assert [e["key"] for e in events if e["event"] == "annotation.exported"] == [LONG]
    out = _outputs(s3, bucket, LONG)
    doc = json.loads(out["json"])
    asr_spans = [(row["cue"][0]["start"], row["cue"][0]["end"]) for row in task["data"]["segments"]]
    assert [(s["start"], s["end"]) for s in doc["segments"]] == asr_spans, "every segment keeps its ASR times"
    assert [s["text"] for s in doc["segments"]] == expected
    assert doc["segments"][2]["asr_text"] == asr_texts[2] and doc["segments"][2]["confidence"] == 0.55
    speakers = ["Speaker 1", "Speaker 2"] * 40
    assert out["txt"] == "".join(f"{s}: {t}\n" for s, t in zip(speakers, expected, strict=True))
    subtitles = list(srt.parse(out["srt"]))
    assert [c.content for c in subtitles] == [f"{s}: {t}" for s, t in zip(speakers, expected, strict=True)]
    assert [c.start.total_seconds() for c in subtitles] == [s["start"] for s in doc["segments"]]
    vtt = webvtt.from_buffer(io.StringIO(out["vtt"]))
    assert [c.text for c in vtt][69] == f"Speaker 2: {call.said[69]}"

    # A short call on the same screen, for the README.
    _upload_call(s3, bucket, CALL, CALL_TURNS, tmp_path)
    run_until_imported(stack, config, expected=1)
    _open_first_task(browser, stack, ls, project, Effort(), [CALL])
    _wait(browser, "the short call's texts", lambda b: _row_texts(b) == [t[1] for t in CALL_TURNS])
    _wait(browser, "the waveform", lambda b: "Loading file" not in _body(b))
    _screenshot(browser, "review-transcript-short.png")


REGION_LIST = ".lsf-tree-list-holder"
"""The region list's pane: a virtual list (rows outside it are not in the page) that scrolls by the wheel."""


def _region_text(browser: WebDriver, effort: Effort, text: str) -> Any:
    """Wheel the region list down most of a screen at a time until ``text``'s box is in view (its middle)."""
    for _ in range(200):
        pane = browser.find_element(By.CSS_SELECTOR, REGION_LIST)
        boxes = [b for b in browser.find_elements(By.CSS_SELECTOR, TEXTS) if b.get_attribute("value") == text]
        if boxes and browser.execute_script(
            "const r = arguments[0].getBoundingClientRect(), p = arguments[1].getBoundingClientRect();"
            " const middle = (r.top + r.bottom) / 2; return middle > p.top && middle < p.bottom",
            boxes[0],
            pane,
        ):
            return boxes[0]
        height = float(browser.execute_script("return arguments[0].clientHeight", pane))
        ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(pane), 0, int(height * 0.9)).perform()
        effort.screens += 0.9
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never showed in the region list")


def test_the_same_call_on_the_segments_layout_costs_what_it_costs_today(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path, reviewer_window: WebDriver, long_call_audio: LongCall
) -> None:
    """Today's screen (the segments layout: texts in the region list) on the same recording, same two fixes: the
    figures the README compares with the transcript layout's. Its project still exports."""
    browser, call = reviewer_window, long_call_audio
    _put_call(s3, bucket, LONG, call.audio, call.turns, call.durations)
    title = "Support calls, segments"
    config = aws_config(stack, tmp_path, bucket, title, layout="segments")
    run_until_imported(stack, config, expected=1)
    project = next(int(p.id) for p in ls.projects.list() if p.title == title)

    effort = Effort()
    _login(browser, stack.labelstudio.url)
    _open_first_task(browser, stack, ls, project, effort, [LONG])
    _wait(browser, "the region list", lambda b: _segment_texts(b))
    shown = len(_segment_texts(browser))
    asr_texts = [t[1] for t in call.turns]
    for index in (2, 69):
        box = _region_text(browser, effort, asr_texts[index])
        effort.click(box)
        box = _region_text(browser, effort, asr_texts[index])  # the list re-renders (and scrolls) on selection
        effort.click(box)
        effort.press(browser, "a", chord=Keys.CONTROL)
        effort.type(browser, call.said[index])
        effort.press(browser, Keys.ENTER)
    effort.click(browser.find_element(By.XPATH, "//button[normalize-space()='Submit']"))
    task = next(t for t in project_tasks(ls, title) if t["data"]["key"] == LONG)
    _wait(browser, "the submitted annotation", lambda _: ls.annotations.list(task["id"]))
    print(f"\nsegments layout, 10-minute call, segments 3 and 70 fixed: {effort}", flush=True)
    print(f"(the region list showed {shown} of 80 segments' texts at once)", flush=True)

    run_syncd(["once", "-c", str(config)], stack)
    doc = json.loads(_outputs(s3, bucket, LONG)["json"])
    expected = [*asr_texts]
    expected[2], expected[69] = call.said[2], call.said[69]
    assert [s["text"] for s in doc["segments"]] == expected
