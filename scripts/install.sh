#!/usr/bin/env bash
# Install everything clones and its tests need on a fresh Debian machine (idempotent).
#  - Debian: Go and govmomi's source, to build the lab vCenter simulator; PostgreSQL's server
#    binaries, which the tests and benchmarks start a throwaway server from (tests/postgres.py)
#  - Python: this project and its dev tools, editable
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/github.com/vmware/govmomi/simulator ] || need_apt+=(golang-github-vmware-govmomi-dev)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install these Debian packages first: sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
  echo "installing ${need_apt[*]} ..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# --root-user-action: CI and fresh machines run as root; the warning is noise there.
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[dev]"
clones lab build >/dev/null
