"""The configuration schema: the single source of truth for validation, defaults and config.example.toml.

One model per TOML table, each key with its default, its allowed values and the description the sample config and
`config validate` print.

Settings come from one TOML file. Secrets never live in it: the file names an environment variable or a file
(systemd's ``LoadCredential=`` puts them under ``$CREDENTIALS_DIRECTORY``) and the value is read from there.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from syncd.config.secrets import read_secret
from syncd.domain.formats import OUTPUT_FORMATS, OutputFormat
from syncd.domain.recording import AUDIO_SUFFIXES

__long__ = (
    "The whole config file as one tree: config.example.toml, `config validate` and the documented keys are generated"
    " by walking these models down from `Settings`, each table a frozen `_Section` that refuses unknown keys; split by"
    " table, a reader would follow one file's tree, in the order the file is written, through a dozen modules."
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelStudioSettings(_Section):
    """The Label Studio server and project where reviewers correct transcripts."""

    url: str = Field("http://127.0.0.1:8080", description="Base URL of the Label Studio server.")
    api_key_env: str = Field(
        "LABEL_STUDIO_API_KEY", description="Environment variable holding the Label Studio API token."
    )
    api_key_file: str = Field(
        "",
        description="File holding the token instead (relative names are looked up in $CREDENTIALS_DIRECTORY).",
    )
    project: str = Field(
        "Transcript review",
        description="Project title (created if missing) or numeric id of an existing one (fixed: no rollover). A"
        ' title may name a period, "{year}" and/or "{month}" (e.g. "Transcript review {year}-{month}"): new tasks'
        " go to a new project when the period changes.",
    )
    max_tasks_per_project: int = Field(
        100_000,
        ge=1,
        description="Tasks (ours and others') a project syncd created holds at most; then new tasks go to the next"
        ' project ("<title> (2)", ...) with the same settings. Label Studio advises about 100k per project.',
    )
    layout: Literal["transcript", "segments", "whole"] = Field(
        "transcript",
        description='"transcript": the whole transcript top to bottom in the main column, one row per ASR segment'
        " (its number, speaker, confidence, doubtful words and a play button for the segment) with its text"
        ' editable in place; "segments": one audio region per ASR segment with its speaker, its text in the region'
        ' list; "whole": one text box, one line per segment. Set before the project is created: a project keeps'
        " the layout it was created with.",
    )
    import_batch_size: int = Field(500, ge=1, le=5000, description="Tasks per bulk import request.")
    on_duplicate: Literal["delete-unreviewed", "keep"] = Field(
        "delete-unreviewed",
        description="Two or more tasks for one audio version (twins: another tool re-imported, a person duplicated"
        ' one, an instance froze mid-import): "delete-unreviewed" deletes the twins nobody reviewed, "keep" keeps'
        " and names them. Twins with reviews are always kept and named; the newest review among them is exported.",
    )
    timeout: float = Field(60.0, gt=0, description="Seconds before a Label Studio request is abandoned.")
    import_settle: float = Field(
        60.0,
        ge=0,
        description="Seconds an import left in doubt (timed out, HTTP 5xx, or cut off by a crash) waits before Label"
        " Studio is asked again which of its tasks landed; only those still absent are imported again. Longer than"
        " Label Studio ever takes to commit one batch.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def lease_margin(self) -> float:
        """Seconds a lease must still hold before a request that creates or deletes something in Label Studio: the
        request's own timeout and one second, so a holder frozen before the request sends nothing."""
        return self.timeout + 1


class S3Settings(_Section):
    """S3 connection shared by all sources (AWS, or any S3-compatible store)."""

    endpoint_url: str = Field("", description="S3 endpoint; empty means AWS. Set it for MinIO, SeaweedFS, ...")
    sqs_endpoint_url: str = Field(
        "", description="Amazon SQS endpoint for the sources' event queues; empty means AWS (same region and keys)."
    )
    region: str = Field("us-east-1", description="AWS region for S3 and Amazon Transcribe.")
    access_key_id_env: str = Field("AWS_ACCESS_KEY_ID", description="Environment variable with the access key.")
    secret_access_key_env: str = Field("AWS_SECRET_ACCESS_KEY", description="Environment variable with the secret key.")
    secret_access_key_file: str = Field(
        "",
        description="File holding the secret key instead (looked up in $CREDENTIALS_DIRECTORY if relative).",
    )


class SourceSettings(_Section):
    """A bucket and prefix to watch for recordings; repeat the table for more."""

    bucket: str = Field(description="Bucket to watch for recordings.")
    prefix: str = Field("", description="Only keys under this prefix are read.")
    suffixes: list[str] = Field(
        list(AUDIO_SUFFIXES), description="Keys ending in one of these (case-insensitive) are audio."
    )
    max_size_mb: int = Field(2048, ge=1, description="Larger objects are skipped (Transcribe's limit is 2 GB).")
    queue_url: str = Field(
        "",
        description="Amazon SQS queue receiving this bucket's s3:ObjectCreated:* and s3:ObjectRemoved:* event"
        " notifications: new and deleted audio are then found from events, and the bucket is listed only every"
        " schedule.full_scan_interval (to find what a lost event missed). Empty: list the bucket every scan.",
    )
    on_audio_deleted: Literal["keep", "delete-task"] = Field(
        "keep",
        description='When audio is deleted from S3: "keep" keeps its task and transcripts and marks the task'
        ' (data.deleted_from_s3, a time); "delete-task" deletes its task unless someone has reviewed it (a'
        " reviewed task is kept and marked). Transcripts already written are never deleted.",
    )

    @field_validator("suffixes")
    @classmethod
    def _known_suffixes(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if s.lower() not in AUDIO_SUFFIXES]
        if bad:
            raise ValueError(f"unsupported {bad}; allowed: {', '.join(AUDIO_SUFFIXES)}")
        return [s.lower() for s in value]


PiiEntityType = Literal[
    "BANK_ACCOUNT_NUMBER",
    "BANK_ROUTING",
    "CREDIT_DEBIT_NUMBER",
    "CREDIT_DEBIT_CVV",
    "CREDIT_DEBIT_EXPIRY",
    "PIN",
    "EMAIL",
    "ADDRESS",
    "NAME",
    "PHONE",
    "SSN",
    "ALL",
]
"""Amazon Transcribe's batch PII entity types (ContentRedaction.PiiEntityTypes)."""


class AwsTranscribeSettings(_Section):
    """Amazon Transcribe batch jobs (engine = "aws")."""

    output_bucket: str = Field("", description="Bucket for Transcribe's raw output; empty: the source bucket.")
    output_prefix: str = Field(
        "syncd-transcribe/", description="Key prefix of Transcribe's raw output; never scanned as audio."
    )
    max_in_flight: int = Field(50, ge=1, le=250, description="Most Transcribe jobs running at once, per instance.")
    speaker_labels: bool = Field(True, description="Ask Transcribe to tell speakers apart.")
    max_speakers: int = Field(4, ge=2, le=30, description="Most speakers Transcribe may label.")
    endpoint_url: str = Field("", description="Transcribe endpoint; empty means AWS (tests point it at moto).")
    redact_pii: bool = Field(
        False,
        description="Have Transcribe replace personal information with [PII] (ContentRedaction, redacted output"
        " only): reviewers see the redacted transcript and the outputs say they are redacted.",
    )
    pii_entity_types: list[PiiEntityType] = Field(
        [], description="The kinds of PII to redact; empty: all of them (ALL)."
    )
    vocabulary_name: str = Field(
        "",
        description="Custom vocabulary syncd keeps from the reviewers' added words (created and updated by syncd;"
        " new jobs use it once Transcribe has it ready); needs transcriber.language. Empty: none.",
    )


class WhisperVadSettings(_Section):
    """faster-whisper's bundled Silero voice detector (used when vad_filter = true)."""

    threshold: float = Field(0.5, gt=0, lt=1, description="Speech probability above which a frame is speech.")
    min_speech_duration_ms: int = Field(0, ge=0, description="Speech shorter than this is dropped.")
    min_silence_duration_ms: int = Field(
        2000, ge=0, description="Silence at least this long ends a stretch of speech (shorter pauses are kept)."
    )
    speech_pad_ms: int = Field(400, ge=0, description="Audio kept on each side of detected speech.")


class WhisperSettings(_Section):
    """Local faster-whisper (engine = "whisper")."""

    model: str = Field(
        "bundled",
        description='"bundled" (tiny.en shipped in a package), a CTranslate2 model directory, or a model name '
        '("small", "Systran/faster-whisper-large-v3") already in the local Hugging Face cache (never downloaded).',
    )
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Where the model runs.")
    device_index: list[int] = Field(
        [0], min_length=1, description='GPUs to use with device = "cuda"; workers are spread over them.'
    )
    compute_type: str = Field(
        "",
        description="CTranslate2 compute type (int8, int8_float16, float16, float32, ...); empty: int8 on cpu, "
        'float16 on cuda, "default" on auto.',
    )
    workers: int = Field(
        0,
        ge=0,
        le=64,
        description="Recordings transcribed at once, sharing one loaded model; 0: one per usable CPU core (the "
        "process's affinity mask, capped by a cgroup CPU quota; at least 1, at most 8) on cpu, 2 per GPU on cuda.",
    )
    cpu_threads: int = Field(0, ge=0, description="CPU threads per worker; 0: the cores divided among the workers.")
    batch_size: int = Field(
        0,
        ge=0,
        le=128,
        description="Chunks of up to 30 s (cut at quiet points) decoded side by side by faster-whisper's batched "
        "pipeline; 1: the sequential decoder, which conditions on the text before; 0: 16 on cuda, 1 on cpu.",
    )
    beam_size: int = Field(5, ge=1, le=10, description="Beam width; 1 is greedy and fastest.")
    channels: Literal["mix", "split"] = Field(
        "mix",
        description='"mix": one transcript of all channels mixed down; "split": each channel of a stereo file '
        'on its own, segments labelled "Channel 1"/"Channel 2" and interleaved by time.',
    )
    vad_filter: bool = Field(
        False, description="Skip what the voice detector calls silence (saves time on recordings with long gaps)."
    )
    vad: WhisperVadSettings = Field(default_factory=WhisperVadSettings)
    hotwords_from_reviews: bool = Field(
        False,
        description="Give faster-whisper the reviewers' vocabulary (review.vocabulary_*: words they keep adding) as"
        " hotwords, so the names and terms they correct come out right more often.",
    )
    window_seconds: float = Field(
        600.0,
        ge=60,
        description="Audio decoded and transcribed at a time; bounds memory on long recordings (each window ends "
        "at a quiet point, word times stay exact).",
    )


class TranscriberSettings(_Section):
    """Speech recognition engine."""

    engine: Literal["whisper", "aws"] = Field("whisper", description='"whisper" (local) or "aws" (Transcribe).')
    language: str = Field("", description='Language code such as "en-US"; empty: detect it.')
    max_attempts: int = Field(5, ge=1, description="Attempts before a recording stays failed.")
    aws: AwsTranscribeSettings = Field(default_factory=AwsTranscribeSettings)
    whisper: WhisperSettings = Field(default_factory=WhisperSettings)

    @model_validator(mode="after")
    def _vocabulary_needs_a_language(self) -> TranscriberSettings:
        if self.aws.vocabulary_name and not self.language:
            raise ValueError(
                "transcriber.aws.vocabulary_name needs transcriber.language (a custom vocabulary has one language)"
            )
        return self


class OutputSettings(_Section):
    """Corrected transcripts written next to each recording."""

    formats: list[OutputFormat] = Field(list(OUTPUT_FORMATS), description="Formats written next to the audio.")
    suffix: str = Field(".transcript", description='Inserted before the format: "a.mp3" -> "a.transcript.txt".')
    write_workers: int = Field(
        16, ge=1, le=64, description="S3 writes in flight at once while exporting (each review is 1 put per format)."
    )
    naming: Literal["stem", "key"] = Field(
        "stem",
        description='"stem": "a.mp3" -> "a.transcript.txt", but "a.mp3.transcript.txt" for every audio key whose'
        ' stem another audio key in its folder shares (a.mp3 beside a.wav); "key": always "a.mp3.transcript.txt".',
    )
    conditional_writes: Literal["require", "single-writer"] = Field(
        "require",
        description='"require": refuse to start (exit 78) on a store that ignores If-None-Match/If-Match;'
        ' "single-writer": plain puts after a version check, safe only while one syncd writes these outputs.',
    )
    export_attempts: int = Field(
        3, ge=1, description="Cycles a task's export may fail before it is parked (until `syncd retry`)."
    )

    @field_validator("suffix")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value or "/" in value:
            raise ValueError('must be non-empty and contain no "/"')
        return value


class ReviewSettings(_Section):
    """Which recordings a person reviews. Off by default: every recording goes to Label Studio."""

    auto_accept_above: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Recordings whose ASR confidence is at or above this get their transcripts written without a"
        ' review (the json says "auto-accepted"), except the audit sample; 0 turns auto-accept off. Pick it'
        " from `syncd report --max-wer`.",
    )
    audit_rate: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of the recordings above the threshold that still go to review (a fixed, random-looking"
        " choice per recording). Their word error rate is what auto-accepting costs.",
    )
    flag_words_below: float = Field(
        0.4,
        ge=0,
        le=1,
        description="Words whose ASR confidence is below this are doubtful: the transcript layout names them in their"
        ' segment\'s cue ("listen for: ...") and marks the segment [check], the segments layout puts a short "Check'
        ' word" mark on the waveform; the task data counts them (flagged_words). Hints only, never written to the'
        " outputs; 0 turns them off. 0.4 is the highest threshold at which a flag was right (its word changed by the"
        " reviewer) at least half the time on clean and on noisy fast speech (bench/flags.py;"
        " docs/how-to/review-at-scale.md); `syncd report` shows what other thresholds would give on your reviews.",
    )
    max_task_minutes: float = Field(
        0.0,
        ge=0,
        description="Recordings longer than this are reviewed as several tasks (units), split at pauses between"
        " segments, each with its own audio clip under units_prefix; the transcripts beside the audio are written"
        " once every unit is reviewed, with the original times. 0 reviews every recording as one task.",
    )
    units_prefix: str = Field(
        "syncd/units/",
        description="Where, in the recording's bucket, the review units' audio clips go (never scanned for audio;"
        " syncd needs s3:PutObject there).",
    )
    vocabulary_key: str = Field(
        "syncd/vocabulary.txt",
        description="Key, in the first source's bucket, of the vocabulary file: words reviewers added that the ASR"
        ' never produced, most frequent first, with their counts; "" turns the file off.',
    )

    @field_validator("units_prefix")
    @classmethod
    def _a_folder(cls, value: str) -> str:
        if not value.endswith("/") or value.startswith("/"):
            raise ValueError('must be a folder: end with "/" and not start with one (e.g. "syncd/units/")')
        return value

    vocabulary_size: int = Field(200, ge=1, le=5000, description="Most words the vocabulary keeps.")
    vocabulary_min_reviews: int = Field(
        2, ge=1, description="A word joins the vocabulary once reviewers added it in this many recordings."
    )


class ScheduleSettings(_Section):
    """How often each stage of `syncd run` runs."""

    scan_interval: float = Field(
        60.0, gt=0, description="Seconds between bucket scans (reads of the event queue, for a source with one)."
    )
    full_scan_interval: float = Field(
        86400.0,
        gt=0,
        description="Seconds between full listings of a source with an event queue (sources.queue_url): they find"
        " audio whose event was lost, and audio deleted meanwhile.",
    )
    transcribe_interval: float = Field(10.0, gt=0, description="Seconds between transcription polls.")
    import_interval: float = Field(
        30.0,
        gt=0,
        description="Imports are paced: a batch goes when it is full (labelstudio.import_batch_size) or when no batch"
        " has gone for this many seconds, so a recording after a quiet spell goes at once and a stream of them makes at"
        " most one import per interval. Label Studio advises at most one import per 30 s.",
    )
    export_interval: float = Field(15.0, gt=0, description="Seconds between pulls of new reviews.")
    webhook_interval: float = Field(
        0.25,
        gt=0,
        description="Seconds between two looks of the export lease holder at the webhook deliveries that other"
        " instances received and left in the state (a delivery to the holder itself is exported at once).",
    )
    export_sweep_interval: float = Field(
        3600.0,
        gt=0,
        description="Seconds between full reads of the reviewed tasks, which find a review whose task Label Studio"
        " did not mark changed (it was stopped between saving the annotation and stamping the task).",
    )
    startup_timeout: float = Field(
        120.0, gt=0, description="Seconds `syncd run` retries reaching Label Studio and S3 before exiting with 69."
    )
    stage_timeout: float = Field(
        3600.0,
        ge=0,
        description="A stage silent longer than this (no progress reported) is stuck: watchdog pings stop so systemd"
        " restarts syncd; 0: no limit. A long transcription that reports progress is not stuck.",
    )
    outage_backoff_max: float = Field(
        300.0,
        gt=0,
        description="Longest wait (seconds) between two tries of a service that is down (back-off from 5 s, doubling);"
        " outages never spend a recording's attempts.",
    )


class StateSettings(_Section):
    """The state: a cache of what S3 and Label Studio hold, rebuildable from them. SQLite for one instance;
    PostgreSQL (``url``) for several sharing the work."""

    path: str = Field("/var/lib/syncd/state.db", description="SQLite state database (used when url is empty).")
    url: str = Field(
        "",
        description='PostgreSQL shared by every instance, "postgresql://USER@HOST:PORT/DB" (no password here);'
        " empty: the SQLite path.",
    )
    password_env: str = Field("SYNCD_STATE_PASSWORD", description="Environment variable with the database password.")
    password_file: str = Field(
        "", description="File holding the database password instead (looked up in $CREDENTIALS_DIRECTORY if relative)."
    )

    @field_validator("url")
    @classmethod
    def _postgres(cls, value: str) -> str:
        if not value:
            return value
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("postgresql", "postgres"):
            raise ValueError('must be a "postgresql://USER@HOST:PORT/DB" URL, or "" for the SQLite path')
        if ":" in rest.partition("@")[0] and "@" in rest:
            raise ValueError("must not hold the password: put it in password_env or password_file")
        return value

    def target(self) -> str:
        """What the store opens: the SQLite path, or the PostgreSQL URL with its password filled in."""
        if not self.url:
            return self.path
        password = read_secret(self.password_env, self.password_file)
        if not password:
            return self.url
        scheme, _, rest = self.url.partition("://")
        user, at, host = rest.rpartition("@")
        return f"{scheme}://{user}:{quote(password, safe='')}{at}{host}" if at else self.url


Role = Literal["scan", "transcribe", "import", "export"]


class InstanceSettings(_Section):
    """This process among others sharing one PostgreSQL state (the defaults suit a single instance)."""

    name: str = Field(
        "",
        description="Unique name of this instance among those sharing the state; empty: the host name. A restarted"
        " instance with the same name takes its unfinished work back at once.",
    )
    roles: list[Role] = Field(
        default_factory=lambda: list(get_args(Role)),
        min_length=1,
        description='Stages this instance runs (e.g. ["transcribe"] on GPU machines).',
    )
    lease_seconds: float = Field(
        30.0,
        ge=3,
        le=3600,
        description="A stopped instance's recordings and single-writer stages are taken over within this many"
        " seconds: its leases are granted for two thirds of it and renewed every third.",
    )

    @field_validator("roles")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a role twice")
        return value


class HttpSettings(_Section):
    """Health, metrics and webhook endpoint."""

    listen: str = Field("127.0.0.1:9464", description='host:port for /healthz, /metrics and /webhook; "" turns it off.')
    public_url: str = Field(
        "", description="URL Label Studio can reach this daemon at; empty: no webhook, polling only."
    )
    webhook_secret_env: str = Field(
        "SYNCD_WEBHOOK_SECRET", description="Environment variable with the webhook shared secret."
    )
    webhook_secret_file: str = Field(
        "", description="File holding the webhook secret instead (looked up in $CREDENTIALS_DIRECTORY if relative)."
    )
    max_cycle_age: float = Field(
        0.0,
        ge=0,
        description="/healthz fails when the last good cycle is older (seconds); 0: three export intervals + 60.",
    )
    dependency_grace: float = Field(
        60.0,
        ge=0,
        description="/healthz fails, naming the service, once a service a stage needs stays down this long (seconds).",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if value and not (host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError('must be "host:port" (e.g. "127.0.0.1:9464") or "" to turn it off')
        return value

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class LogSettings(_Section):
    """Structured logs on stdout (journald when run by systemd)."""

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Least severe level logged.")
    format: Literal["auto", "json", "console"] = Field(
        "auto", description='"auto": console on a terminal, JSON lines otherwise.'
    )


class Settings(_Section):
    labelstudio: LabelStudioSettings = Field(default_factory=LabelStudioSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    sources: Annotated[list[SourceSettings], Field(min_length=1)] = Field(
        description="One [[sources]] table per bucket/prefix to watch."
    )
    transcriber: TranscriberSettings = Field(default_factory=TranscriberSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    instance: InstanceSettings = Field(default_factory=InstanceSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    log: LogSettings = Field(default_factory=LogSettings)
