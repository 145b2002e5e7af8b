#!/usr/bin/env bash
# Installs Debian's PostgreSQL, starts it and lets local connections on 127.0.0.1 in without a
# password (trust), as the store tests expect (postgres://postgres@127.0.0.1:5432/postgres).
# Idempotent: a second run finds everything in place and only checks that the server answers.
# For developer and CI machines only: trust authentication is never for a shared host.
set -euo pipefail

ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
    pg_createcluster "$version" main >/dev/null
fi

# Trust on loopback, first in the file so that it wins over the packaged md5/scram lines.
hba="/etc/postgresql/$version/main/pg_hba.conf"
marker="# visio-bridge tests: trust on loopback"
if ! grep -qF "$marker" "$hba"; then
    {
        echo "$marker"
        echo "host all all 127.0.0.1/32 trust"
        echo "host all all ::1/128 trust"
        cat "$hba"
    } >"$hba.new"
    chown --reference="$hba" "$hba.new"
    chmod --reference="$hba" "$hba.new"
    mv "$hba.new" "$hba"
    if ready; then pg_ctlcluster "$version" main reload; fi
fi

if ! ready; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do ready && break; sleep 1; done
fi
ready || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
psql -h 127.0.0.1 -U postgres -Atc 'select 1' >/dev/null
echo "PostgreSQL $version ready on 127.0.0.1:5432 (trust)"
