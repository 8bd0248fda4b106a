#!/usr/bin/env bash
# The main job: set everything up, then show n4afs on real NIRS data in an embedded
# workspace (./demo-workspace, recreated each time).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ws=demo-workspace
rm -rf "$ws"
n4afs=.venv/bin/n4afs
$n4afs init "$ws"
$n4afs -w "$ws" datasets add chemotools:fermentation chemotools:coffee
$n4afs -w "$ws" datasets list
echo "workspace: $(pwd)/$ws (index: $ws/n4a.duckdb, blobs: $ws/objects/)"
