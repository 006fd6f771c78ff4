"""The live clients a cycle needs, all built up front from settings: state store, S3 (and its event queues), the
engine, Label Studio, and the projects syncd writes to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncd import errors
from syncd.config import Settings, read_secret
from syncd.errors import ConfigError, ProbeError, classify
from syncd.labelstudio import LabelStudioClient, auth
from syncd.labelstudio.probe import labelstudio_alive, labelstudio_release, support
from syncd.log import describe_error, get_logger
from syncd.projects import Projects
from syncd.s3.events import Queue
from syncd.s3.probe import buckets_readable, conditional_writes
from syncd.s3.storage import Storage, credentials
from syncd.state import StateStore, outages
from syncd.state.cluster import PROJECT, Instance
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


def labelstudio_client(settings: Settings) -> LabelStudioClient:
    """The Label Studio client; a token that can never work (expired, an access token) is a ConfigError naming the
    key it came from."""
    try:
        return LabelStudioClient(settings.labelstudio, labelstudio_token(settings))
    except auth.TokenError as exc:
        raise ConfigError(f"{auth.where(settings.labelstudio)}: the Label Studio token {exc}") from exc


def labelstudio_login(settings: Settings, client: LabelStudioClient) -> str:
    """Who the token logs in as; a ProbeError when Label Studio refuses it: CONFIG (78) when the token can never
    work (revoked, a legacy key where legacy tokens are off, not a personal access token), NOPERM (77) otherwise."""
    try:
        return client.whoami()
    except Exception as exc:
        if getattr(exc, "status_code", None) != 401:
            raise ProbeError(f"Label Studio: {describe_error(exc)}", classify(exc)) from exc
        body = getattr(exc, "body", "") or str(exc)
        reason = auth.refusal_reason(str(body))
        where = auth.where(settings.labelstudio)
        if reason is None:
            words = auth.refusal_words(body)
            said = f": {words}" if words else ""
            ahead = auth.issued_ahead(labelstudio_token(settings))
            raise ProbeError(f"{where}: Label Studio refused the token (HTTP 401{said}){ahead}", errors.NOPERM) from exc
        raise ProbeError(f"{where}: the Label Studio token {reason}", errors.CONFIG) from exc


@dataclass
class Services:
    settings: Settings
    state: StateStore
    storage: Storage
    transcriber: Transcriber
    labelstudio: LabelStudioClient
    log: Any = field(default_factory=get_logger)

    @classmethod
    def build(cls, settings: Settings, *, paced: bool = False) -> Services:
        storage = Storage(settings.s3, conditional=settings.output.conditional_writes == "require")
        return cls(
            settings=settings,
            # A frozen process's transaction must not keep its lease row locked past the lease (``Database``).
            state=StateStore.open(settings.state, hold_limit=settings.instance.lease_seconds / 3),
            storage=storage,
            transcriber=make_transcriber(settings, storage),
            labelstudio=labelstudio_client(settings),
            paced=paced,
        )

    paced: bool = False
    """Imports wait for a full batch or for ``import_interval`` (the daemon); `syncd once` imports whatever is ready."""
    queues: dict[str, Queue] = field(init=False)
    """The sources' event queues by URL."""
    instance: Instance = field(init=False)
    """This process among the instances sharing the state: its roles and the leases it holds."""

    projects: Projects = field(init=False)
    """The Label Studio projects syncd writes to and reads from, and their life cycle."""

    def __post_init__(self) -> None:
        self.instance = Instance.from_settings(self.settings.instance, self.state)
        urls = {source.queue_url for source in self.settings.sources if source.queue_url}
        self.queues = {url: Queue(self.settings.s3, url) for url in sorted(urls)}
        self.projects = Projects(self.settings, self.state, self.labelstudio, self.storage_credentials(), self.log)
        self.projects.sure = self._project_sure

    def _project_sure(self) -> None:
        """Project set-up runs under the ``project`` lease (``Instance.exclusively``): re-check it before each call
        that creates something in Label Studio, with the margin of one request."""
        self.instance.sure(PROJECT, self.settings.labelstudio.lease_margin)

    def connect(self, *, warm: bool = False) -> None:
        """Label Studio answers and the project is ready, every source bucket is readable and (unless the operator
        chose single-writer mode) enforces conditional writes; a ProbeError (with the exit code it stands for)
        otherwise. ``warm``: a local engine starts loading its model meanwhile (at start; not on a reload, which
        would hold the old model and the new one at once).
        """
        if warm and "transcribe" in self.settings.instance.roles:
            load = getattr(self.transcriber, "warm", None)
            if load is not None:
                load()
        labelstudio_alive(self.settings)
        supported, about = support(labelstudio_release(self.settings))
        if not supported:
            self.log.warning("labelstudio.unsupported", url=self.settings.labelstudio.url, about=about)
        labelstudio_login(self.settings, self.labelstudio)
        buckets_readable(self.settings, self.storage.client)
        if self.storage.conditional:
            for bucket, prefix in {s.bucket: s.prefix for s in self.settings.sources}.items():
                conditional_writes(self.storage.client, bucket, prefix)
        try:
            self.instance.join()
        except ConfigError as exc:
            raise ProbeError(str(exc), errors.CONFIG) from exc
        except Exception as exc:
            raise ProbeError(f"state {self.state.where}: {describe_error(exc)}", classify(exc)) from exc
        try:
            with self.instance.exclusively(PROJECT):
                self.projects.ensure()
        except Exception as exc:
            raise ProbeError(f"Label Studio project: {describe_error(exc)}", classify(exc)) from exc
        outages.mark_up(self.state, [outages.LABELSTUDIO], self.log)

    def storage_credentials(self) -> dict[str, Any]:
        s3 = self.settings.s3
        extra: dict[str, Any] = {"region_name": s3.region}
        if s3.endpoint_url:
            extra["s3endpoint"] = s3.endpoint_url
        return credentials(s3) | extra

    def close(self, *, leave: bool = True) -> None:
        """Close the clients; ``leave`` (unless a reload hands this instance's leases to new clients) frees them."""
        self.transcriber.close()
        if not leave:
            self.state.close()
            return
        try:
            self.instance.leave()
        except Exception as exc:  # the state may be the thing that is down; its leases then run out on their own
            self.log.warning("instance.leave_failed", error=describe_error(exc))
        self.state.close()
