"""Logs are the monitoring interface, so they must never carry a credential: every line syncd prints during an
end-to-end run (daemon with webhook, one-shot cycles, operator commands, and the error paths of rejected
credentials and a broken config) is scanned for the Label Studio token, the S3 secret key, the webhook secret and
presigned-URL signatures."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import requests

from devstack import SENTENCES, Stack, free_port, log_events, run_syncd, speak
from devstack import SyncdProcess as Daemon
from syncd.labelstudio import as_dict
from syncd.labelstudio.webhooks import HEADER

WEBHOOK_SECRET = "webhook-secret-never-logged-0123456789"
WRONG_TOKEN = "badbadbad0badbadbad0badbadbad0badbadbad0"
WRONG_S3_SECRET = "wrong-s3-secret-never-logged-987654321"
# A presigned URL's signature parts, unless the value was redacted.
PRESIGNED = re.compile(
    r"(X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId)=(?!\[redacted)"
)


def test_no_secret_reaches_the_logs(
    stack: Stack, s3: Any, ls: Any, bucket: str, config_file: Path, tmp_path: Path
) -> None:
    s3.upload_file(str(speak(SENTENCES[1], tmp_path / "a.wav")), bucket, "calls/a.wav")
    s3.put_object(Bucket=bucket, Key="calls/corrupt.mp3", Body=b"ID3 not audio" * 100)
    port = free_port()
    good = config_file.read_text().replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    good = good.replace("[http]\n", f'[http]\npublic_url = "http://127.0.0.1:{port}"\n')
    good += "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 2\n"
    config_file.write_text(good)
    output: list[str] = []

    daemon = Daemon(config_file, stack, env={"SYNCD_WEBHOOK_SECRET": WEBHOOK_SECRET})
    try:
        imported = daemon.events[daemon.wait("task.imported", timeout=120)]
        task = as_dict(ls.tasks.get(str(imported["task"])))
        ls.annotations.create(id=task["id"], result=task["predictions"][0]["result"], was_cancelled=False)
        daemon.wait("annotation.exported", timeout=60)
        requests.post(f"http://127.0.0.1:{port}/webhook", json={}, headers={HEADER: "wrong"}, timeout=10)
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        config_file.write_text(good.replace("[log]", "[log]\nbogus = 1"))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait("config.reload_failed", timeout=30)
        config_file.write_text(good)
        time.sleep(1)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    output += daemon.lines

    for args, env in (
        (["once"], {}),
        (["check"], {}),
        (["status", "--json"], {}),
        (["once"], {"AWS_SECRET_ACCESS_KEY": WRONG_S3_SECRET}),
        (["check"], {"AWS_SECRET_ACCESS_KEY": WRONG_S3_SECRET, "LABEL_STUDIO_API_KEY": WRONG_TOKEN}),
        (["run"], {"LABEL_STUDIO_API_KEY": WRONG_TOKEN}),
    ):
        result = run_syncd([*args, "-c", str(config_file)], stack, env=env, check=False, timeout=300)
        output += [result.stdout, result.stderr]

    text = "".join(output)
    events = {e["event"] for e in log_events(text)}
    # The scan covered the paths that matter: review export, webhook refusal, failed reload, rejected credentials.
    assert {"annotation.exported", "webhook.rejected", "config.reload_failed", "daemon.connect_failed"} <= events
    assert "stage.failed" in events or "transcription.failed" in events
    for secret in (stack.labelstudio.token, stack.s3.secret_key, WEBHOOK_SECRET, WRONG_TOKEN, WRONG_S3_SECRET):
        assert secret not in text, f"a secret ({secret[:4]}...) reached the logs"
    assert not PRESIGNED.search(text), PRESIGNED.search(text)
