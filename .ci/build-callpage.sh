#!/usr/bin/env bash
# Builds the built-in call page (callpage/ -> callpage/dist/, served by the bridge at /m/{slug}):
# npm ci from the committed lockfile (no install scripts), type check, the pure modules' tests,
# then the bundle. Idempotent: skipped when dist/ was built from the same sources and lockfile.
# Usage: bash .ci/build-callpage.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/../callpage"

stamp_of() {
    find package.json package-lock.json tsconfig.json build.mjs src test -type f -print0 \
        | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
stamp="$(stamp_of)"
if [ "${1:-}" != "--force" ] && [ -f dist/app.js ] && [ -f dist/app.css ] \
    && [ "$(cat dist/.stamp 2>/dev/null)" = "$stamp" ]; then
    echo "call page: already built from these sources"
    exit 0
fi
command -v npm >/dev/null || { echo "call page: npm (Node 20+) is needed to build it" >&2; exit 1; }
if [ ! -d node_modules ] || [ "$(cat node_modules/.lock-stamp 2>/dev/null)" != "$(sha256sum package-lock.json)" ]; then
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    sha256sum package-lock.json > node_modules/.lock-stamp
fi
npm run --silent typecheck
npm test --silent >/dev/null
npm run --silent build
echo "$stamp" > dist/.stamp
echo "call page: built ($(du -sh dist | cut -f1))"
