"""Choosing the whisper model and its layout: defaults per device, local models only, CTranslate2 directories as they
are."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from syncd.config import WhisperSettings
from syncd.errors import ConfigError
from syncd.transcribers.whisper_model import plan, resolve_model, usable_cores


def test_defaults_follow_the_device() -> None:
    cpu = plan(WhisperSettings(), cores=2)
    assert (cpu.compute_type, cpu.workers, cpu.cpu_threads, cpu.batch_size) == ("int8", 2, 1, 1)
    big = plan(WhisperSettings(), cores=16)
    assert (big.workers, big.cpu_threads) == (8, 2)
    assert cpu.model_version == "whisper-tiny.en-int8"
    gpu = plan(WhisperSettings(device="cuda", device_index=[0, 1]), cores=16)
    assert (gpu.compute_type, gpu.workers, gpu.batch_size, gpu.models_per_device) == ("float16", 4, 16, 2)
    mine = plan(WhisperSettings(workers=3, cpu_threads=2, batch_size=8, compute_type="float32"), cores=2)
    assert (mine.workers, mine.cpu_threads, mine.batch_size, mine.model_version) == (3, 2, 8, "whisper-tiny.en-float32")


def test_a_model_directory_that_is_not_there_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "nope"))):
        resolve_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no model\.bin"):
        resolve_model(str(tmp_path / "empty"))


def test_a_model_name_comes_from_the_local_cache_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(ConfigError) as err:
        resolve_model("small.en")
    assert "Systran/faster-whisper-small.en" in str(err.value)
    assert str(tmp_path / "models--Systran--faster-whisper-small.en") in str(err.value)
    with pytest.raises(ConfigError, match="not a known model name"):
        resolve_model("enormous")


def test_a_ctranslate2_directory_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "my-model").mkdir()
    (tmp_path / "my-model" / "model.bin").write_bytes(b"")
    assert resolve_model(str(tmp_path / "my-model")) == (str(tmp_path / "my-model"), "my-model")


def test_usable_cores_follow_the_affinity_mask_and_the_cgroup_quota(tmp_path: Path) -> None:
    mask = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    assert usable_cores(cpu_max) == mask, "no cgroup file: the affinity mask"
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max) == mask
    cpu_max.write_text("50000 100000\n")
    assert usable_cores(cpu_max) == 1, "half a CPU still gets one worker"
    cpu_max.write_text(f"{(mask + 4) * 100000} 100000\n")
    assert usable_cores(cpu_max) == mask, "a quota above the mask does not add cores"
    assert plan(WhisperSettings()).cores == usable_cores()
