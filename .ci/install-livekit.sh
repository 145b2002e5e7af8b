#!/usr/bin/env bash
# Builds the real LiveKit server (the SFU) from the Go module proxy, once per pinned version.
# The binary lands outside the repository, where `appservice/locallivekit.py` looks for it
# (the tests' fixture and `visio-bridge demo` both use that module):
#   ${VISIO_LIVEKIT_HOME:-$HOME/.cache/visio-bridge}/livekit-server-<version>/livekit-server
# Idempotent: when that binary exists and reports the pinned version, nothing is rebuilt.
# Needs Go >= 1.26 (the release's go.mod asks for it). Usage: .ci/install-livekit.sh
set -euo pipefail

version="v1.13.5"
home="${VISIO_LIVEKIT_HOME:-$HOME/.cache/visio-bridge}"
target="$home/livekit-server-$version"
binary="$target/livekit-server"

if [ -x "$binary" ] && "$binary" --version 2>/dev/null | grep -qF "${version#v}"; then
    echo "livekit-server $version already built: $binary"
    exit 0
fi
command -v go >/dev/null || { echo "Go is needed to build livekit-server (go 1.26+)" >&2; exit 1; }

mkdir -p "$target"
# The module's main package is cmd/server, so `go install` names the binary `server`.
GOBIN="$target" GOFLAGS="-trimpath" go install "github.com/livekit/livekit-server/cmd/server@$version"
mv -f "$target/server" "$binary"
"$binary" --version
