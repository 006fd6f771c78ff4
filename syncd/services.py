"""The live clients a cycle needs, all built up front from settings: state store, S3 (and its event queues), the
engine, Label Studio (``labelstudio.connection``), and the projects syncd writes to. ``Services`` only holds them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from syncd import errors
from syncd.config import Settings
from syncd.errors import ConfigError, ProbeError, classify
from syncd.labelstudio import LabelStudioClient, connection
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


@dataclass(frozen=True)
class Services:
    """The clients, built once (``Services.build``) and never changed after: every collaborator is passed in."""

    settings: Settings
    state: StateStore
    storage: Storage
    transcriber: Transcriber
    labelstudio: LabelStudioClient
    queues: dict[str, Queue]
    """The sources' event queues by URL."""
    instance: Instance
    """This process among the instances sharing the state: its roles and the leases it holds."""
    projects: Projects
    """The Label Studio projects syncd writes to and reads from, and their life cycle."""
    log: Any
    paced: bool = False
    """Imports wait for a full batch or for ``import_interval`` (the daemon); `syncd once` imports whatever is ready."""

    @classmethod
    def build(cls, settings: Settings, *, paced: bool = False) -> Services:
        """Every client from the settings."""
        storage = Storage(settings.s3, conditional=settings.output.conditional_writes == "require")
        return cls.assemble(
            settings,
            # A frozen process's transaction must not keep its lease row locked past the lease (``Database``).
            state=StateStore.open(settings.state, hold_limit=settings.instance.lease_seconds / 3),
            storage=storage,
            transcriber=make_transcriber(settings, storage),
            labelstudio=connection.client(settings.labelstudio),
            paced=paced,
        )

    @classmethod
    def assemble(
        cls,
        settings: Settings,
        state: StateStore,
        storage: Storage,
        transcriber: Transcriber,
        labelstudio: LabelStudioClient,
        *,
        paced: bool = False,
        log: Any = None,
    ) -> Services:
        """The services over these clients: this instance in the state, the event queues, and the projects (whose
        set-up re-checks the ``project`` lease before each call that creates something in Label Studio, with the
        margin of one request)."""
        log = get_logger() if log is None else log
        instance = Instance.from_settings(settings.instance, state)
        urls = {source.queue_url for source in settings.sources if source.queue_url}
        queues = {url: Queue(settings.s3, url) for url in sorted(urls)}
        sure = partial(instance.sure, PROJECT, settings.labelstudio.lease_margin)
        projects = Projects(settings, state, labelstudio, storage_credentials(settings), log, sure=sure)
        return cls(settings, state, storage, transcriber, labelstudio, queues, instance, projects, log, paced)

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
        connection.login(self.settings.labelstudio, self.labelstudio)
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
        self.state.outages.mark_up([outages.LABELSTUDIO], self.log)

    def storage_credentials(self) -> dict[str, Any]:
        return storage_credentials(self.settings)

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


def storage_credentials(settings: Settings) -> dict[str, Any]:
    """What Label Studio needs to play the audio: the S3 storage it registers per bucket."""
    s3 = settings.s3
    extra: dict[str, Any] = {"region_name": s3.region}
    if s3.endpoint_url:
        extra["s3endpoint"] = s3.endpoint_url
    return credentials(s3) | extra
