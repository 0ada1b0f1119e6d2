#!/usr/bin/env bash
# Run every test: installs what is missing, builds the lab vCenter, runs the lab's own Go tests
# (lab/*_test.go), then pytest. Either failing fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# Built against Debian's govmomi like the lab itself (bot/adapters/lab/build.py), sharing its
# Go build cache.
(
  cd lab
  GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= \
    GOCACHE="${GOCACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clones/go-build}" go test .
)
python3 -m pytest -q "$@"
