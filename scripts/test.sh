#!/usr/bin/env bash
# Run every test: installs what is missing, builds the lab vCenter, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python3 -m pytest -q "$@"
