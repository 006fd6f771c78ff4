"""The live clients a cycle needs, built once from settings: state store, S3, the engine, Label Studio."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncd.config import ConfigError, Settings, read_secret
from syncd.labelstudio import LabelStudioClient
from syncd.log import describe_error, get_logger
from syncd.probe import ProbeError, buckets_readable, classify, conditional_writes, labelstudio_alive
from syncd.state import StateStore
from syncd.storage import Storage, credentials
from syncd.transcribers.base import Transcriber


def make_transcriber(settings: Settings, storage: Storage) -> Transcriber:
    engine = settings.transcriber.engine
    if engine == "aws":
        from syncd.transcribers.aws import AwsTranscriber

        return AwsTranscriber(settings.transcriber, settings.s3, storage)
    from syncd.transcribers.whisper import WhisperTranscriber

    return WhisperTranscriber(settings.transcriber.whisper, storage, settings.transcriber.language)


def labelstudio_token(settings: Settings) -> str:
    ls = settings.labelstudio
    token = read_secret(ls.api_key_env, ls.api_key_file)
    if not token:
        where = f"file {ls.api_key_file!r}" if ls.api_key_file else f"environment variable {ls.api_key_env}"
        raise ConfigError(
            f"labelstudio: no API token found in {where} (set labelstudio.api_key_env or labelstudio.api_key_file)"
        )
    return token


@dataclass
class Services:
    settings: Settings
    state: StateStore
    storage: Storage
    transcriber: Transcriber
    labelstudio: LabelStudioClient
    log: Any = field(default_factory=get_logger)
    _project_id: int | None = None

    @classmethod
    def build(cls, settings: Settings) -> Services:
        storage = Storage(settings.s3, conditional=settings.output.conditional_writes == "require")
        return cls(
            settings=settings,
            state=StateStore(settings.state.path),
            storage=storage,
            transcriber=make_transcriber(settings, storage),
            labelstudio=LabelStudioClient(settings.labelstudio, labelstudio_token(settings)),
        )

    @property
    def project_id(self) -> int:
        if self._project_id is None:
            raise RuntimeError("Services.connect() (or ensure_project()) must run before the stages")
        return self._project_id

    def ensure_project(self) -> int:
        """The project, with its sorted view and audio storages, created or brought up to date."""
        project = self.labelstudio.ensure_project(self.settings.transcriber.aws.max_speakers)
        for bucket in sorted({s.bucket for s in self.settings.sources}):
            self.labelstudio.ensure_storage(project, bucket, self.storage_credentials())
        self._project_id = project
        self.log.info("project.ready", project=project, title=self.settings.labelstudio.project)
        return project

    def connect(self) -> None:
        """Label Studio answers and the project is ready, every source bucket is readable and (unless the operator
        chose single-writer mode) enforces conditional writes; a ProbeError (with the exit code it stands for)
        otherwise."""
        labelstudio_alive(self.settings)
        buckets_readable(self.settings, self.storage.client)
        if self.storage.conditional:
            for bucket, prefix in {s.bucket: s.prefix for s in self.settings.sources}.items():
                conditional_writes(self.storage.client, bucket, prefix)
        try:
            self.ensure_project()
        except Exception as exc:
            raise ProbeError(f"Label Studio project: {describe_error(exc)}", classify(exc)) from exc

    def storage_credentials(self) -> dict[str, Any]:
        s3 = self.settings.s3
        extra: dict[str, Any] = {"region_name": s3.region}
        if s3.endpoint_url:
            extra["s3endpoint"] = s3.endpoint_url
        return credentials(s3) | extra

    def close(self) -> None:
        self.state.close()
