#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, pg_ctl) and psql are on the machine, for the
# state-store tests, which start a real PostgreSQL on loopback. Installs Debian's package where
# they are missing (needs root and the Debian mirror). Prints nothing when they are present.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 && command -v psql > /dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
  echo "postgres: PostgreSQL is missing; install it (apt-get install postgresql) and re-run" >&2
  exit 1
fi
echo "postgres: installing Debian's postgresql" >&2
apt-get update -qq > /dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql > /dev/null
