"""The real stack shared by the tests, the benchmarks and the demo: Label Studio, SeaweedFS S3, moto (Amazon
Transcribe, SQS), PostgreSQL (shared state), espeak-ng audio, and the real `syncd` console script run as a process.
"""

from devstack.audio import SENTENCES, call_sentences, long_call, speak
from devstack.events import evented_bucket, on_moto_events
from devstack.services import (
    LS_PASSWORD,
    LS_TOKEN,
    LS_USER,
    LS_VENV,
    OLD_LS_VENV,
    PG_PASSWORD,
    REGION,
    ROOT,
    VENV_BIN,
    LabelStudio,
    MotoServer,
    Nginx,
    Postgres,
    SeaweedS3,
    Stack,
    StackError,
    free_port,
    running_stack,
)
from devstack.syncd_process import SyncdProcess, log_events, notify_socket, run_syncd
from devstack.transcribe import (
    TRANSCRIBE_FIXTURES,
    TRANSCRIBE_PREFIX,
    aws_config,
    project_tasks,
    recording_for,
    run_until_imported,
    seed_formula,
    upload_with_results,
)
from devstack.waiting import WaitTimeoutError, until

__all__ = [
    "LS_PASSWORD",
    "LS_TOKEN",
    "LS_USER",
    "LS_VENV",
    "OLD_LS_VENV",
    "PG_PASSWORD",
    "REGION",
    "ROOT",
    "SENTENCES",
    "TRANSCRIBE_FIXTURES",
    "TRANSCRIBE_PREFIX",
    "VENV_BIN",
    "LabelStudio",
    "MotoServer",
    "Nginx",
    "Postgres",
    "SeaweedS3",
    "Stack",
    "StackError",
    "SyncdProcess",
    "WaitTimeoutError",
    "aws_config",
    "call_sentences",
    "evented_bucket",
    "free_port",
    "log_events",
    "long_call",
    "notify_socket",
    "on_moto_events",
    "project_tasks",
    "recording_for",
    "run_syncd",
    "run_until_imported",
    "running_stack",
    "seed_formula",
    "speak",
    "until",
    "upload_with_results",
]
