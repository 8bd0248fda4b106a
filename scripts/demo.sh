#!/usr/bin/env bash
# The main job: set everything up, run real sweeps on real NIRS data (chemotools'
# fermentation and coffee spectra) into an embedded workspace (./demo-workspace, recreated
# each time), show the ranked results, then mount the browsable tree at ./demo-mount.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ws=demo-workspace
mnt=demo-mount
n4afs=.venv/bin/n4afs
if mountpoint -q "$mnt" 2>/dev/null || ! ls "$mnt" >/dev/null 2>&1; then
  $n4afs umount "$mnt" || true   # a mount (or a stale one) left by a previous demo
fi
rm -rf "$ws"
$n4afs init "$ws"
$n4afs -w "$ws" datasets add chemotools:fermentation chemotools:coffee
$n4afs -w "$ws" run examples/regression_sweep.yaml --dataset fermentation --name "glucose sweep"
$n4afs -w "$ws" run examples/classification_sweep.yaml --dataset coffee --name "coffee origin"
$n4afs -w "$ws" runs
$n4afs -w "$ws" best fermentation
$n4afs -w "$ws" datasets list
$n4afs -w "$ws" du | sed -n 1p  # sed reads to the end: `head` could close the pipe early
mkdir -p "$mnt"
$n4afs mount "$ws" "$mnt"
echo
echo "The tree is mounted at $(pwd)/$mnt — look at:"
echo "  $mnt/README.txt                      how to read the tree"
echo "  $mnt/runs/fermentation/RESULTS.csv   every result, best first (opens in Excel/LibreOffice)"
echo "  $mnt/best/fermentation.csv           predictions of the best pipeline"
echo "  $mnt/runs/fermentation/$(ls "$mnt/runs/fermentation" | grep '^best_' | sed 's/^best_//; s/\.csv$//')/charts/"
echo "Unmount with: $n4afs umount $mnt"
