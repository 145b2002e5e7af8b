#!/usr/bin/env bash
# Everything the test-suite needs on a fresh Debian machine, idempotently: PostgreSQL (trust on
# 127.0.0.1), Debian's chromium, the real livekit-server, the project in a venv with its test
# extra, and the transcription models (CPU). Each step skips what is already in place.
# Usage: bash .ci/install-dev.sh [VENV]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"

bash .ci/install-postgres.sh

# The browser tests drive Debian's chromium (Playwright never downloads a browser of its own).
if ! command -v chromium >/dev/null || ! command -v strace >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium strace >/dev/null
fi

bash .ci/install-livekit.sh

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
# The built-in call page (/m/{slug}): npm ci + build, skipped when already built.
bash .ci/build-callpage.sh
bash .ci/install-transcription.sh "$venv"
