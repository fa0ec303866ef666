#!/usr/bin/env bash
# Makes sure a docker compose client is on the machine, for tests/unit/test_deploy.py's
# `docker compose config` check of deploy/compose.yaml (it needs no Docker engine). Uses the
# docker CLI's compose plugin when present, else installs Debian's docker-compose where missing
# (needs root and the Debian mirror; without them the test parses the file instead).
set -euo pipefail
if docker compose version > /dev/null 2>&1 || command -v docker-compose > /dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
  echo "compose: no docker compose client; the compose check will only parse the file" >&2
  exit 0
fi
echo "compose: installing Debian's docker-compose" >&2
apt-get update -qq > /dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose > /dev/null
