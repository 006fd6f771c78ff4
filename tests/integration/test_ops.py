"""Operator commands against the real stack: `syncd check`, `syncd status [--json]`, `syncd retry`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack import Stack, run_syncd
from syncd import errors


def _lines(output: str) -> dict[str, str]:
    """check's output: check name -> "ok" / "FAIL"."""
    found = {}
    for line in output.splitlines():
        if line.startswith(("ok ", "FAIL ")):
            verdict, rest = line.split(None, 1)
            found[rest.split(": ", 1)[0]] = verdict
    return found


def test_check_passes_on_a_working_config(stack: Stack, s3: Any, bucket: str, config_file: Path) -> None:
    s3.put_object(Bucket=bucket, Key="calls/a.mp3", Body=b"ID3 some audio bytes")
    result = run_syncd(["check", "-c", str(config_file)], stack)
    checks = _lines(result.stdout)
    assert set(checks.values()) == {"ok"}, result.stdout
    where = f"s3://{bucket}/"
    expected = {"config", "state", "labelstudio.token", "labelstudio.reachable", "labelstudio.version"}
    expected |= {"labelstudio.auth"}
    expected |= {"labelstudio.project", f"s3.list {where}", f"s3.read {where}", f"s3.write {where}"}
    expected |= {f"s3.conditional_writes {where}"}
    assert set(checks) == expected
    assert "all checks passed" in result.stdout
    # The write probe cleaned up after itself; the audio is untouched.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["calls/a.mp3"]


def test_check_reports_every_failure_and_exits_non_zero(stack: Stack, bucket: str, config_file: Path) -> None:
    config_file.write_text(config_file.read_text() + '\n[[sources]]\nbucket = "no-such-bucket-syncd"\n')
    result = run_syncd(["check", "-c", str(config_file)], stack, env={"LABEL_STUDIO_API_KEY": "e" * 40}, check=False)
    assert result.returncode == errors.CHECK_FAILED
    checks = _lines(result.stdout)
    assert checks["labelstudio.reachable"] == "ok"
    assert checks["labelstudio.auth"] == "FAIL" and "labelstudio.project" not in checks
    assert checks[f"s3.write s3://{bucket}/"] == "ok"
    assert checks["s3.list s3://no-such-bucket-syncd/"] == "FAIL"
    assert "2 check(s) failed" in result.stdout
    assert "e" * 40 not in result.stdout + result.stderr


def test_check_covers_transcribe_with_the_aws_engine(stack: Stack, bucket: str, tmp_path: Path) -> None:
    config = tmp_path / "aws.toml"
    config.write_text(stack.config(tmp_path, bucket, project="t check aws", engine="aws"))
    result = run_syncd(["check", "-c", str(config)], stack)
    assert _lines(result.stdout)["transcribe"] == "ok"


def test_status_and_retry(stack: Stack, s3: Any, bucket: str, config_file: Path) -> None:
    s3.put_object(Bucket=bucket, Key="calls/corrupt.mp3", Body=b"ID3 this is not an mp3 frame at all" * 50)
    s3.put_object(Bucket=bucket, Key="calls/empty.mp3", Body=b"")
    run_syncd(["once", "-c", str(config_file)], stack, check=False)

    report = json.loads(run_syncd(["status", "-c", str(config_file), "--json"], stack).stdout)
    assert report["recordings"]["failed"] == 1 and report["recordings"]["skipped"] == 1
    assert report["pending"] == 0 and report["oldest_pending"] is None
    errors = {e["key"]: e for e in report["last_errors"]}
    assert errors["calls/corrupt.mp3"]["status"] == "failed" and "decode" in errors["calls/corrupt.mp3"]["reason"]
    assert "empty" in errors["calls/empty.mp3"]["reason"]

    text = run_syncd(["status", "-c", str(config_file)], stack).stdout
    assert "failed" in text and f"s3://{bucket}/calls/corrupt.mp3" in text and "oldest pending: none" in text

    retried = run_syncd(["retry", "-c", str(config_file)], stack)
    assert "re-queued 1 failed recording(s)" in retried.stdout
    report = json.loads(run_syncd(["status", "-c", str(config_file), "--json"], stack).stdout)
    assert report["recordings"]["failed"] == 0 and report["recordings"]["discovered"] == 1
    assert report["oldest_pending"]["key"] == "calls/corrupt.mp3"
    assert "re-queued 0 failed" in run_syncd(["retry", "-c", str(config_file)], stack).stdout
