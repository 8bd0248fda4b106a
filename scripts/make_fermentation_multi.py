"""Write examples/fermentation_multi.csv: a small multi-target NIRS file with metadata and
replicate scans, from chemotools' real on-line fermentation data.

What is real and what is not:
- spectra: chemotools' `load_fermentation_test` on-line spectra, every 5th wavelength
  (210 of 1047), rounded to 5 decimals;
- targets: the 34 HPLC samples' glucose and ethanol (g/L), real;
- which spectra go with an HPLC sample: the on-line spectra carry no time stamp; we assume
  one spectrum every 1.25 min from the start (1629 spectra over the ~34 h of HPLC samples)
  and take the spectrum nearest each HPLC time and the two scans around it (2.5 min span):
  three real consecutive scans of nearly the same broth, the replicate scans of that
  physical sample (`sample_no`);
- `operator` is made up (one per 12 h shift) to show a text metadata column.

Run: .venv/bin/python scripts/make_fermentation_multi.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "examples" / "fermentation_multi.csv"
MINUTES_PER_SCAN = 1.25
SHIFTS = ("ana", "bruno", "chloe")


def main() -> None:
    from chemotools.datasets import load_fermentation_test

    spectra, hplc = load_fermentation_test()
    waves = spectra.columns[::5]
    values = spectra[waves].to_numpy()
    last = len(values) - 5  # the last 3 scans are flat (all zero); centre + 1 stays before
    rows = []
    for k, sample in enumerate(hplc.itertuples(), start=1):
        centre = min(max(1, round(sample.time * 60 / MINUTES_PER_SCAN)), last)
        operator = SHIFTS[min(int(sample.time // 12), 2)]
        for replicate, scan in enumerate((centre - 1, centre, centre + 1), start=1):
            rows.append(
                [
                    f"F{k:02d}-{replicate}",
                    f"F{k:02d}",
                    operator,
                    round(float(sample.glucose), 3),
                    round(float(sample.ethanol), 3),
                    *(f"{v:.5f}" for v in values[scan]),
                ]
            )
    with OUT.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ["sample_id", "sample_no", "operator", "glucose", "ethanol"]
            + [f"{float(w):g}" for w in waves]
        )
        writer.writerows(rows)
    print(
        f"{OUT}: {len(rows)} scans of {len(hplc)} samples, {len(waves)} wavelengths, "
        f"{OUT.stat().st_size} bytes"
    )
    assert np.isfinite(values).all()


if __name__ == "__main__":
    main()
