"""The reviewer's screen, tried as a reviewer would: headless Chromium (Debian's, with its driver) under Selenium,
against the real stack (Label Studio 1.23.2, SeaweedFS, moto for Amazon Transcribe, the `syncd` CLI as a subprocess).

The audio is real speech (espeak-ng); the Transcribe output beside it is written here with chosen confidences, so the
least-confident task and its low-confidence segments are known. ``SYNCD_SCREENSHOTS=docs`` also saves the screenshots
the README shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import LS_PASSWORD, LS_USER, Stack, aws_config, log_events, run_syncd, run_until_imported, speak
from devstack.transcribe import TRANSCRIBE_PREFIX, project_tasks, recording_for
from syncd.labelstudio import as_dict, layouts
from syncd.labelstudio.client import VIEW_TITLE
from syncd.transcribers.aws import job_name

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
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
    etag = s3.put_object(Bucket=bucket, Key=key, Body=mp3.read_bytes())["ETag"].strip('"')
    output = json.dumps(_transcribe_output(turns, durations)).encode()
    s3.put_object(
        Bucket=bucket, Key=f"{TRANSCRIBE_PREFIX}{job_name(recording_for(bucket, key, etag))}.json", Body=output
    )


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromium-driver (Debian) are missing: run scripts/stack-install.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--mute-audio"):
        options.add_argument(arg)
    options.add_argument("--window-size=1500,1350")
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    chrome.set_page_load_timeout(WAIT)
    try:
        yield chrome
    finally:
        chrome.quit()


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
    _screenshot(browser, "review-labeling.png")
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
