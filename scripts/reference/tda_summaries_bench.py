#!/usr/bin/env python3
"""giotto-tda's side of the summaries benchmark (`cargo bench -p marketd-tda --bench summaries`).

Times giotto-tda's transformers on the same diagrams with the same parameters, best of N wall
time (as many runs as fit in 1.5 s, at least 3), `fit_transform` on a one-diagram collection of
one homology dimension (infinite bars dropped), and for the distances `PairwiseDistance`'s
`transform` of one diagram after `fit` on the other (fit not timed). giotto-tda's bottleneck and
Wasserstein distances are hera's, approximate with relative error delta = 0.01 (its default);
marketd's are exact. Installs nothing: run it with the venv of tda_summaries.py:

    ~/.cache/marketd/venv/bin/python scripts/reference/tda_summaries_bench.py [--json]
"""
import json, os, re, sys, time

import numpy as np
from gtda.diagrams import (Amplitude, BettiCurve, PairwiseDistance, PersistenceEntropy,
                           PersistenceImage, PersistenceLandscape, Silhouette)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tda_summaries import data_dir, read_ripser  # noqa: E402

# the same as benches/summaries.rs
DIAGRAMS = [("sphere_3_192_H1", "sphere_3_192_d2", 1), ("rp2_600_H2", "rp2_600_d2", 2),
            ("o3_1024_H0", "o3_1024_d2_t1.8", 0), ("o3_4096_H1", "o3_4096_d1_t1.4", 1)]
PAIRS = [("sphere_H1_vs_rp2_H1", ("sphere_3_192_d2", 1), ("rp2_600_d2", 1)),
         ("rp2_H2_vs_o3_1024_H2", ("rp2_600_d2", 2), ("o3_1024_d2_t1.8", 2)),
         ("sphere_H0_vs_rp2_H0", ("sphere_3_192_d2", 0), ("rp2_600_d2", 0))]
TRANSFORMERS = [
    ("landscape", lambda: PersistenceLandscape(n_layers=5, n_bins=100)),
    ("betti_curve", lambda: BettiCurve(n_bins=100)),
    ("persistence_image", lambda: PersistenceImage(sigma=0.1, n_bins=100)),
    ("entropy", lambda: PersistenceEntropy()),
    ("silhouette", lambda: Silhouette(power=1.0, n_bins=100)),
    ("amplitude_landscape", lambda: Amplitude(metric="landscape",
                                              metric_params={"p": 2, "n_bins": 100, "n_layers": 1})),
]


def best(f, budget=1.5):
    start, runs, b = time.perf_counter(), 0, float("inf")
    while runs < 3 or (time.perf_counter() - start < budget and runs < 1000):
        t = time.perf_counter()
        f()
        b = min(b, time.perf_counter() - t)
        runs += 1
    return b


def load(file, dim):
    bars = read_ripser(os.path.join(data_dir(), "expected", file + ".txt"))[dim]
    return np.array([[b, d, dim] for b, d in bars if d is not None], dtype=float)


def main():
    as_json = "--json" in sys.argv
    if not as_json:
        print(f"{'diagram':<22} {'operation':<22} {'bars':>8} {'best µs':>14}")

    def report(diagram, op, bars, t):
        if as_json:
            print(json.dumps({"diagram": diagram, "op": op, "bars": bars, "best_us": t * 1e6}))
        else:
            print(f"{diagram:<22} {op:<22} {bars:>8} {t * 1e6:>14.1f}", flush=True)

    for name, file, dim in DIAGRAMS:
        X = load(file, dim)[None, :, :]
        for op, make in TRANSFORMERS:
            report(name, op, X.shape[1], best(lambda: make().fit_transform(X)))
    for name, (fa, da), (fb, db) in PAIRS:
        A, B = load(fa, da), load(fb, db)
        # PairwiseDistance wants the same homology dimension label in both
        A[:, 2] = 0
        B[:, 2] = 0
        for op, metric, params in [("bottleneck", "bottleneck", {}), ("wasserstein_2", "wasserstein", {"p": 2})]:
            pd = PairwiseDistance(metric=metric, metric_params=params, order=None).fit(A[None])
            report(name, op, len(A) + len(B), best(lambda: pd.transform(B[None])))


if __name__ == "__main__":
    main()
