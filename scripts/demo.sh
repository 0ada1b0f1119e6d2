#!/usr/bin/env bash
# The origin's lab against the bundled lab vCenter: 75 linked clones, savings, chart, strip back.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
clones lab up >/dev/null
clones demo --chart savings.png
echo
echo "The lab vCenter keeps running for you to try more ('clones help'); 'clones lab down' stops it."
