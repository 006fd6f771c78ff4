"""The Quick start demo: a local stack, sample recordings, and `syncd run` in the foreground (see scripts/demo)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from devstack import LS_PASSWORD, LS_USER, ROOT, SENTENCES, VENV_BIN, Stack, speak

DEMO_DIR = ROOT / ".stack" / "demo"
BUCKET = "recordings"
SAMPLES = {f"calls/2026/call-{i + 1}.mp3": text for i, text in enumerate(SENTENCES)}

DEMO_SCHEDULE = """
[schedule]
scan_interval = 15
transcribe_interval = 5
import_interval = 5
export_interval = 5
"""


def upload_samples(stack: Stack) -> None:
    s3 = stack.s3.client()
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)
    present = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    for key, text in SAMPLES.items():
        if key not in present:
            s3.upload_file(str(speak(text, DEMO_DIR / "samples" / key)), BUCKET, key)


def banner(stack: Stack, config: Path) -> str:
    return f"""
  Label Studio  {stack.labelstudio.url}   (log in as {LS_USER} / {LS_PASSWORD})
                open the project "Transcript review"; tasks come least confident first.
  S3            {stack.s3.url}   bucket "{BUCKET}"; corrected transcripts appear next to the audio
                as calls/2026/call-N.transcript.{{txt,json,srt,vtt}} once you submit a review.
  Config        {config}
  Stop          Ctrl-C (stops syncd, Label Studio and S3; state is kept in {DEMO_DIR})
"""


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ls-port", type=int, default=8080, help="Label Studio port if free (default 8080)")
    parser.add_argument("--s3-port", type=int, default=8333, help="S3 port if free (default 8333)")
    args = parser.parse_args()
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    print("==> starting Label Studio and SeaweedFS (first start takes about 30 s)", flush=True)
    with Stack(DEMO_DIR, ls_port=args.ls_port, s3_port=args.s3_port) as stack:
        upload_samples(stack)
        config = DEMO_DIR / "syncd.toml"
        text = stack.config(DEMO_DIR, BUCKET, project="Transcript review", layout="transcript")
        text = text.replace('format = "json"', 'format = "console"').replace('"debug"', '"info"')
        config.write_text(text + DEMO_SCHEDULE)
        print(banner(stack, config), flush=True)
        daemon = subprocess.Popen(
            [str(VENV_BIN / "syncd"), "run", "-c", str(config)], env={**os.environ, **stack.env()}
        )
        try:
            return daemon.wait()
        except KeyboardInterrupt:
            daemon.send_signal(signal.SIGTERM)
            return daemon.wait(60)


if __name__ == "__main__":
    sys.exit(main())
