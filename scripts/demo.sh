#!/usr/bin/env bash
# The main job: set everything up, run real sweeps on real NIRS data (chemotools'
# fermentation and coffee spectra) into an embedded workspace (./demo-workspace, recreated
# each time), show the ranked results, then mount the browsable tree at ./demo-mount.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "n4afs demo: set up this machine, sweep real NIRS spectra into ./demo-workspace, rank"
echo "the results, then mount the browsable tree at ./demo-mount."
bash scripts/setup.sh
ws=demo-workspace
mnt=demo-mount
n4afs=.venv/bin/n4afs
# A mount left by a previous demo (live or stale) is in the mount table; a fresh clone has none.
if awk -v m="$PWD/$mnt" '{ gsub(/\\040/, " ", $2) } $2 == m { found = 1 } END { exit !found }' /proc/mounts; then
  $n4afs umount "$mnt"
fi
rm -rf "$ws"
$n4afs init "$ws"
$n4afs -w "$ws" datasets add chemotools:fermentation chemotools:coffee
# a lab-style file: two targets, a text metadata column, 3 replicate scans per sample
$n4afs -w "$ws" datasets add examples/fermentation_multi.csv --note "on-line NIR probe" \
  --set instrument=on-line
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
echo "To type \`n4afs\` in your shell (the README's commands): source .venv/bin/activate"
