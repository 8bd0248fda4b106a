#!/usr/bin/env bash
# The main job: set everything up, then run a real sweep on real NIRS data (chemotools'
# fermentation and coffee spectra) into an embedded workspace, ./demo-workspace, recreated
# each time, and show the ranked results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ws=demo-workspace
rm -rf "$ws"
n4afs=.venv/bin/n4afs
$n4afs init "$ws"
$n4afs -w "$ws" datasets add chemotools:fermentation chemotools:coffee
$n4afs -w "$ws" run examples/regression_sweep.yaml --dataset fermentation --name "glucose sweep"
$n4afs -w "$ws" run examples/classification_sweep.yaml --dataset coffee --name "coffee origin"
$n4afs -w "$ws" runs
$n4afs -w "$ws" best fermentation
$n4afs -w "$ws" datasets list
echo
echo "workspace: $(pwd)/$ws  (index: n4a.duckdb, blobs: objects/)"
echo "try: $n4afs -w $ws results fermentation --metric r2"
