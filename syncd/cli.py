"""Command line: syncd run | once | check | status | report | retry | config | model | version."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Sequence

from syncd import __version__, errors
from syncd.config import Settings, load
from syncd.errors import ConfigError
from syncd.log import configure, get_logger

DEFAULT_CONFIG = os.environ.get("SYNCD_CONFIG", "/etc/syncd/config.toml")

EPILOG = "exit codes:\n" + "\n".join(
    textwrap.fill(text, 100, initial_indent=f"  {code:<3} ", subsequent_indent=" " * 6)
    for code, text in errors.DOC.items()
)


def _settings(args: argparse.Namespace, *, report: bool = False) -> Settings:
    """The validated config, with logging set up; a command that prints a ``report`` on stdout logs to stderr, so
    `syncd status --json | jq` never meets a log line (a first open of the state logs its migration)."""
    settings = load(args.config)
    configure(args.log_level or settings.log.level, settings.log.format, sys.stderr if report else None)
    return settings


def cmd_once(args: argparse.Namespace) -> int:
    from syncd.errors import ProbeError
    from syncd.pipeline import run_cycle
    from syncd.services import Services

    svc = Services.build(_settings(args))
    try:
        svc.connect(warm=True)
        return errors.OK if run_cycle(svc) else errors.CHECK_FAILED
    except ProbeError as exc:
        svc.log.error("once.connect_failed", reason=str(exc), exit_code=exc.code)
        return exc.code
    finally:
        svc.close()


def cmd_run(args: argparse.Namespace) -> int:
    from syncd.daemon import run

    return run(args.config, _settings(args))


def cmd_check(args: argparse.Namespace) -> int:
    from syncd.commands.check import run_checks

    return run_checks(_settings(args, report=True), args.config)


def cmd_status(args: argparse.Namespace) -> int:
    from syncd.commands.status import print_status

    return print_status(_settings(args, report=True), args.json)


def cmd_report(args: argparse.Namespace) -> int:
    from syncd.commands.report import print_report

    return print_report(_settings(args, report=True), args.json, args.bin_width, args.max_wer)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: give a number above 0 and at most 1")
    return value


def cmd_retry(args: argparse.Namespace) -> int:
    from syncd.commands.retry import retry

    return retry(_settings(args, report=True))


def cmd_version(_args: argparse.Namespace) -> int:
    print(f"syncd {__version__}")
    return errors.OK


def cmd_config_validate(args: argparse.Namespace) -> int:
    load(args.config)
    print(f"{args.config}: valid")
    return errors.OK


def cmd_config_example(_args: argparse.Namespace) -> int:
    from syncd.config.sample import render

    sys.stdout.write(render())
    return errors.OK


def cmd_model_fetch(args: argparse.Namespace) -> int:
    from syncd.commands.model import fetch

    pins = dict(args.sha256 or [])
    return fetch(args.name, revision=args.revision, cache_dir=args.cache_dir, endpoint=args.endpoint, pins=pins)


def cmd_model_verify(args: argparse.Namespace) -> int:
    from syncd.commands.model import verify

    return verify(args.name, revision=args.revision, cache_dir=args.cache_dir)


def cmd_model_list(args: argparse.Namespace) -> int:
    from syncd.commands.model import list_models

    return list_models(cache_dir=args.cache_dir)


def _add_model_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from syncd.commands.model import EXIT_CODES, parse_pin
    from syncd.transcribers.whisper_model import SERVICE_HF_CACHE

    codes = [
        textwrap.fill(text, 78, initial_indent=f"  {code:<4}", subsequent_indent=" " * 6)
        for code, text in EXIT_CODES.items()
    ]
    epilog = "exit codes:\n" + "\n".join(codes)
    cache = argparse.ArgumentParser(add_help=False)
    cache.add_argument(
        "--cache-dir",
        metavar="DIR",
        help=f"Hugging Face hub cache (default: $HF_HUB_CACHE, else ~/.cache/huggingface/hub); the systemd unit reads "
        f"{SERVICE_HF_CACHE}",
    )
    named = argparse.ArgumentParser(add_help=False, parents=[cache])
    named.add_argument(
        "name",
        metavar="NAME",
        help="as transcriber.whisper.model takes it: a faster-whisper name (tiny.en, small, large-v3, ...; see "
        "`syncd model list`) or a repository id (Systran/faster-whisper-small)",
    )
    named.add_argument("--revision", default="main", metavar="REV", help="branch, tag or commit (default: main)")
    model = sub.add_parser(
        "model",
        help="fetch, verify and list faster-whisper models (the one command that downloads)",
        description=textwrap.fill(
            "syncd never downloads a model at run time: transcriber.whisper.model = NAME is looked up in the local "
            f"Hugging Face cache. `syncd model fetch NAME --cache-dir {SERVICE_HF_CACHE}` puts it where the systemd "
            "unit reads it, checked by hash; `syncd model verify NAME` re-checks it offline.",
            78,
        ),
    )
    actions = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], text: str, parent: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        p = actions.add_parser(
            name,
            parents=[parent],
            help=text.split(":")[0],
            description=textwrap.fill(text, 78),
            epilog=epilog if name != "list" else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=fn)
        return p

    fetch = add(
        "fetch",
        cmd_model_fetch,
        "download a model into the Hugging Face cache, checked by hash: only the files a CTranslate2 model needs, "
        "each against the hash the hub publishes (sha256 for LFS files, the git blob id for the others) and any "
        "--sha256 pin; a file that does not match is never placed in the cache. Writes a manifest for `syncd model "
        "verify`. Run it as root before `systemctl enable --now syncd`; a private or gated model reads HF_TOKEN.",
        named,
    )
    fetch.add_argument(
        "--sha256",
        action="append",
        type=parse_pin,
        metavar="FILE=HEX",
        help="also require this sha256 for FILE, e.g. model.bin=1a5a...; repeat for more files",
    )
    fetch.add_argument("--endpoint", metavar="URL", help="hub or mirror (default: $HF_ENDPOINT, else huggingface.co)")
    add("verify", cmd_model_verify, "re-hash a fetched model against its manifest: no network", named)
    add("list", cmd_model_list, "faster-whisper's model names, their repositories and what the cache holds", cache)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Keep S3 recordings, machine transcripts and human review in Label Studio in sync.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help="config file (default: %(default)s, or $SYNCD_CONFIG)",
    )
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override [log] level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=fn)
        return p

    add("run", cmd_run, "run the daemon: sync continuously until SIGTERM/SIGINT")
    add("once", cmd_once, "run one full cycle (scan, transcribe, import, export) and exit")
    add("check", cmd_check, "check config, Label Studio, S3 (list, read, write) and Transcribe; one line each")
    status = add("status", cmd_status, "recordings per state, projects, services down, parked exports, the last errors")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    report = add(
        "report",
        cmd_report,
        "review calibration: WER per ASR-confidence bin, the auto-accept threshold a target WER allows, backlog"
        " in audio hours, review latency and per-annotator figures",
    )
    report.add_argument("--json", action="store_true", help="print JSON instead of text")
    report.add_argument("--max-wer", type=_fraction, metavar="RATE", help="target WER, e.g. 0.05: name the threshold")
    report.add_argument("--bin-width", type=_fraction, default=0.1, metavar="W", help="confidence bin width (0.1)")
    add("retry", cmd_retry, "re-queue failed recordings and parked exports, with a fresh attempt budget")
    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    validate = config_sub.add_parser("validate", parents=[common], help="check a config file and exit")
    validate.set_defaults(func=cmd_config_validate)
    example = config_sub.add_parser("example", help="print a sample config with every key, its default and meaning")
    example.set_defaults(func=cmd_config_example)
    _add_model_commands(sub)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return errors.CONFIG
    except KeyboardInterrupt:
        return errors.OK
    except Exception as exc:
        get_logger().error("syncd.crashed", error=exc, exc_info=True)
        return errors.SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
