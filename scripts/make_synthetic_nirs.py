"""A synthetic NIRS-like regression set, generated here: OUR OWN SYNTHETIC DATA, not measurements.

Nothing in it comes from a real instrument or a published data set. It exists so benchmarks
(`scripts/bench_run.py`) can run at a realistic size (default 1000 samples x 1000 wavelengths)
without downloading anything, and give the same numbers on every machine for the same seed.

How a spectrum is made (absorbance, wavelengths 1100-2498 nm, evenly spaced, ~1.4 nm apart
at the default size):

- Four latent constituents ("water", "protein", "fat", "carbohydrate" in spirit only) with
  positive, correlated concentrations per sample. Each constituent has a pure spectrum made of
  a few Gaussian absorption bands near where NIR overtone/combination bands of O-H, N-H and
  C-H sit (e.g. 1450 and 1940 nm for water).
- The chemical signal is the concentration-weighted sum of the pure spectra (Beer-Lambert).
- Per sample, a multiplicative scatter factor (around 1), an additive baseline offset and a
  linear baseline slope over the range: what SNV / MSC / derivatives are meant to remove.
- White noise on every wavelength.

y is the concentration of the first constituent ("protein") plus a little reference-method
noise, so a PLS on scatter-corrected spectra should recover it well, not perfectly.

API: `make(n_samples, n_wavelengths, seed) -> (X, y, wavelengths)`; deterministic for a seed.
CLI: `.venv/bin/python scripts/make_synthetic_nirs.py [--samples 1000] [--wavelengths 1000]
[--seed 0] [--out synthetic.csv]` writes a CSV (sample_id, y, one column per wavelength in nm)
when `--out` is given, and prints a summary otherwise.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

WAVELENGTH_MIN = 1100.0
WAVELENGTH_MAX = 2498.0

# (center nm, width nm, relative height) per band, per constituent; constituent 0 is y.
BANDS: tuple[tuple[tuple[float, float, float], ...], ...] = (
    # "protein": N-H combination and overtones, some C-H
    ((1510.0, 35.0, 0.55), (2055.0, 45.0, 0.80), (2180.0, 40.0, 1.00), (1690.0, 30.0, 0.30)),
    # "water": O-H first overtone and combination
    ((1450.0, 45.0, 1.00), (1940.0, 55.0, 1.40), (1190.0, 40.0, 0.15)),
    # "fat": C-H overtones and combinations
    ((1210.0, 25.0, 0.35), (1725.0, 25.0, 0.90), (1760.0, 25.0, 0.70), (2310.0, 30.0, 1.10)),
    # "carbohydrate": O-H / C-O combination
    ((1580.0, 50.0, 0.40), (2100.0, 50.0, 0.95), (2280.0, 40.0, 0.50)),
)
MEAN_CONCENTRATION = np.array([12.0, 20.0, 8.0, 45.0])  # arbitrary units (think % w/w)
SPREAD = np.array([0.30, 0.20, 0.45, 0.15])  # log-normal sigma per constituent


def wavelengths_nm(n_wavelengths: int) -> np.ndarray:
    """Evenly spaced wavelengths over 1100-2498 nm (1000 points: step ~1.4 nm)."""
    return np.linspace(WAVELENGTH_MIN, WAVELENGTH_MAX, n_wavelengths)


def pure_spectra(wavelengths: np.ndarray) -> np.ndarray:
    """One row per constituent: the sum of its Gaussian bands (peak height 1 at most ~1.4)."""
    spectra = np.zeros((len(BANDS), len(wavelengths)))
    for row, bands in enumerate(BANDS):
        for center, width, height in bands:
            spectra[row] += height * np.exp(-0.5 * ((wavelengths - center) / width) ** 2)
    return spectra


def concentrations(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Positive, mildly correlated concentrations (log-normal around the means)."""
    correlation = np.array(
        [
            [1.0, -0.4, 0.2, -0.3],
            [-0.4, 1.0, -0.3, -0.2],
            [0.2, -0.3, 1.0, -0.1],
            [-0.3, -0.2, -0.1, 1.0],
        ]
    )
    covariance = correlation * np.outer(SPREAD, SPREAD)
    logs = rng.multivariate_normal(np.zeros(len(SPREAD)), covariance, size=n_samples)
    return MEAN_CONCENTRATION * np.exp(logs - 0.5 * SPREAD**2)


def make(
    n_samples: int = 1000, n_wavelengths: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, wavelengths): X is n_samples x n_wavelengths absorbance, y the first constituent.

    Deterministic: the same arguments give the same arrays, bit for bit.
    """
    if n_samples < 2 or n_wavelengths < 2:
        raise ValueError("need at least 2 samples and 2 wavelengths")
    rng = np.random.default_rng(seed)
    wavelengths = wavelengths_nm(n_wavelengths)
    conc = concentrations(n_samples, rng)
    chemical = (conc / 100.0) @ pure_spectra(wavelengths)  # Beer-Lambert, path length 1
    scale = (wavelengths - wavelengths.mean()) / (wavelengths.max() - wavelengths.min())
    multiplicative = rng.normal(1.0, 0.12, size=(n_samples, 1))  # scatter / path length
    offset = rng.normal(0.25, 0.08, size=(n_samples, 1))  # additive baseline
    slope = rng.normal(0.0, 0.06, size=(n_samples, 1))  # sloping baseline over the range
    noise = rng.normal(0.0, 0.0015, size=(n_samples, n_wavelengths))
    X = multiplicative * chemical + offset + slope * scale + noise
    y = conc[:, 0] + rng.normal(0.0, 0.15, size=n_samples)  # reference-method error
    return X, y, wavelengths


def write_csv(path: str, X: np.ndarray, y: np.ndarray, wavelengths: np.ndarray) -> None:
    """sample_id, y, then one column per wavelength (header: nm, 2 decimals)."""
    width = max(4, len(str(len(X))))
    header = ["sample_id", "y", *(f"{w:.2f}" for w in wavelengths)]
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(",".join(header) + "\n")
        for i, (row, target) in enumerate(zip(X, y, strict=True)):
            values = ",".join(f"{v:.6g}" for v in row)
            out.write(f"S{i + 1:0{width}d},{target:.6g},{values}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--wavelengths", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="CSV file to write (sample_id, y, wavelengths in nm)")
    args = parser.parse_args(argv)
    X, y, wavelengths = make(args.samples, args.wavelengths, args.seed)
    step = wavelengths[1] - wavelengths[0]
    print(
        f"synthetic NIRS (ours, not real data): {X.shape[0]} samples x {X.shape[1]} wavelengths, "
        f"{wavelengths[0]:.0f}-{wavelengths[-1]:.0f} nm step {step:.3f} nm, seed {args.seed}; "
        f"y mean {y.mean():.3f} sd {y.std():.3f}; X range {X.min():.3f}..{X.max():.3f}"
    )
    if args.out:
        write_csv(args.out, X, y, wavelengths)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
