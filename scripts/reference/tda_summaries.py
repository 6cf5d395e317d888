#!/usr/bin/env python3
"""Reference values for marketd-tda's summaries and distances, from giotto-tda, persim and GUDHI.

Writes JSON fixtures to crates/marketd-tda/tests/fixtures/summaries/ (committed), which
crates/marketd-tda/tests/summaries.rs compares with marketd's values. Installs nothing itself:
run it with a Python that has them, e.g.

    python3 -m venv ~/.cache/marketd/venv
    ~/.cache/marketd/venv/bin/pip install giotto-tda persim 'gudhi>=3.14'   # or --pre gudhi==3.14.0a2
    ~/.cache/marketd/venv/bin/python scripts/reference/tda_summaries.py

Diagrams: Ripser's expected barcodes from shared/data/tda/expected (or MARKETD_TDA_DATA) and
hand-made ones with infinite bars, an empty dimension, duplicates and a single bar. Infinite bars
are dropped before giotto-tda sees a diagram (marketd's convention, giotto-tda's reduced
homology), and an empty dimension is given to giotto-tda as its padding triple (0, 0, dim).

What each file holds (all per diagram, per homology dimension):
  diagrams.json     the diagrams themselves ([birth, death|null] per dimension)
  giotto.json       BettiCurve, PersistenceLandscape, Silhouette (powers 1 and 2),
                    PersistenceImage (weight 1), PersistenceEntropy (normalize False/True),
                    Amplitude for every metric (p = 2 and p = 1), landscape amplitude with a fine
                    grid (the exact norms' reference), with the parameters used
  persim.json       persim's pixel-integrated images on given pixel edges (weight persistence^1)
  gudhi.json        GUDHI's Landscape (with its sqrt(2)) and Entropy (natural log)
  distances.json    GUDHI's exact bottleneck_distance (3.14+) and hera's Wasserstein distance
                    (order 1 and 2, internal_p inf, delta 1e-12) on pairs of diagrams
"""
import json, math, os, re, sys

import numpy as np
import gudhi
import gudhi.hera
from gudhi.representations import Entropy as GEntropy, Landscape as GLandscape
from gtda.diagrams import (Amplitude, BettiCurve, PersistenceEntropy, PersistenceImage,
                           PersistenceLandscape, Silhouette)
from persim import images_kernels, images_weights
from persim.images import _transform as persim_transform

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "marketd-tda", "tests", "fixtures", "summaries")

# parameters of the fixtures (tests/summaries.rs uses the same)
SAMPLES = 40
LAYERS = 3
PIXELS = 12
SIGMA = 0.1
FINE = 20000


def data_dir():
    d = os.environ.get("MARKETD_TDA_DATA")
    if d:
        return d
    for up in ["../shared/data/tda", "../../shared/data/tda", "../../../shared/data/tda"]:
        p = os.path.normpath(os.path.join(ROOT, up))
        if os.path.isdir(os.path.join(p, "expected")):
            return p
    sys.exit("shared/data/tda not found (set MARKETD_TDA_DATA)")


def read_ripser(path):
    dims = []
    for line in open(path):
        t = line.strip()
        m = re.match(r"persistence intervals in dim (\d+):", t)
        if m:
            while len(dims) <= int(m.group(1)):
                dims.append([])
            continue
        if t.startswith("[") and t.endswith(")"):
            b, d = t[1:-1].split(",")
            dims[-1].append([float(b), None if d.strip() == "" else float(d)])
    return dims


def diagrams():
    data = data_dir()
    out = {}
    for name in ["random20_d2", "projective_plane_csv_d2", "sphere_3_192_d2", "rp2_600_d1",
                 "o3_1024_d2_t1.8"]:
        out[name] = read_ripser(os.path.join(data, "expected", name + ".txt"))
    out["hand_infinite"] = [[[0, 1], [0, 2], [0, None]], [[1, 3], [1.5, 2], [2, None], [0.5, 2.5]]]
    out["hand_empty_dim"] = [[[0, 0.5], [0, 1.25], [0, None]], []]
    out["hand_single"] = [[[0, None]], [[0.25, 1.0]]]
    out["hand_duplicates"] = [[[0, 1], [0, 1], [0, 2]], [[1, 2], [1, 2], [1.5, 1.75]]]
    out["hand_all_empty"] = [[], []]
    return out


def giotto_array(dgm):
    rows = []
    for k, bars in enumerate(dgm):
        fin = [[b, d, k] for b, d in bars if d is not None]
        rows += fin if fin else [[0.0, 0.0, k]]
    return np.array([rows], dtype=float)


def finite(bars):
    return [(b, d) for b, d in bars if d is not None]


def image_ranges(dgm):
    """giotto-tda's `_bin` for persistence images: per dimension (birth, persistence) ranges,
    a one-value axis widened to the largest end over all dimensions."""
    r = []
    for bars in dgm:
        f = finite(bars) or [(0.0, 0.0)]
        bs = [b for b, _ in f]
        ps = [d - b for b, d in f]
        r.append([[min(bs), max(bs)], [min(ps), max(ps)]])
    tb = max(x[0][1] for x in r)
    tp = max(x[1][1] for x in r)
    for x in r:
        if x[0][0] == x[0][1]:
            x[0][1] = tb
        if x[1][0] == x[1][1]:
            x[1][1] = tp
    return r


def per_dim(arr, ndims, width=None):
    """Split giotto's (1, ndims * width, ...) output per dimension."""
    a = arr[0]
    if width is None:
        return {str(k): a[k].tolist() for k in range(ndims)}
    return {str(k): a[k * width:(k + 1) * width].tolist() for k in range(ndims)}


def giotto(dgm):
    X = giotto_array(dgm)
    nd = len(dgm)
    res = {}
    bc = BettiCurve(n_bins=SAMPLES).fit(X)
    res["betti_curve"] = {"grid": {str(k): v.ravel().tolist() for k, v in bc.samplings_.items()},
                          "values": per_dim(bc.transform(X), nd)}
    pl = PersistenceLandscape(n_layers=LAYERS, n_bins=SAMPLES).fit(X)
    res["landscape"] = {"grid": {str(k): v.ravel().tolist() for k, v in pl.samplings_.items()},
                        "values": per_dim(pl.transform(X), nd, LAYERS)}
    for power in [1.0, 2.0]:
        s = Silhouette(power=power, n_bins=SAMPLES).fit(X)
        res[f"silhouette_power{power:g}"] = per_dim(s.transform(X), nd)
    pi = PersistenceImage(sigma=SIGMA, n_bins=PIXELS).fit(X)
    # giotto's image is rot90 of [birth][persistence]: row 0 is the highest persistence; store it
    # as marketd does, row r = persistence index r (ascending), column = birth index
    img = pi.transform(X)[0]
    res["persistence_image"] = {str(k): np.flipud(img[k]).tolist() for k in range(nd)}
    res["persistence_image_samplings"] = {str(k): v.tolist() for k, v in pi.samplings_.items()}  # (2, n): birth, persistence
    for norm in [False, True]:
        e = PersistenceEntropy(normalize=norm, nan_fill_value=None).fit_transform(X)[0]
        res[f"entropy_normalize_{str(norm).lower()}"] = {
            str(k): (None if not np.isfinite(e[k]) else float(e[k])) for k in range(nd)}
    amps = {}
    for metric, params in [("bottleneck", {}), ("wasserstein", {"p": 2}), ("wasserstein", {"p": 1}),
                           ("betti", {"p": 2, "n_bins": SAMPLES}), ("betti", {"p": 1, "n_bins": SAMPLES}),
                           ("landscape", {"p": 2, "n_bins": SAMPLES, "n_layers": LAYERS}),
                           ("landscape", {"p": 1, "n_bins": SAMPLES, "n_layers": 1}),
                           ("silhouette", {"p": 2, "n_bins": SAMPLES, "power": 1.0}),
                           ("silhouette", {"p": 1, "n_bins": SAMPLES, "power": 2.0}),
                           ("heat", {"p": 2, "n_bins": PIXELS, "sigma": SIGMA}),
                           ("heat", {"p": 1, "n_bins": PIXELS, "sigma": 0.3}),
                           ("persistence_image", {"p": 2, "n_bins": PIXELS, "sigma": SIGMA}),
                           ("persistence_image", {"p": 1, "n_bins": PIXELS, "sigma": 0.3})]:
        a = Amplitude(metric=metric, metric_params=params, order=None).fit_transform(X)[0]
        amps.setdefault(metric, []).append({"params": params, "values": {str(k): float(a[k]) for k in range(nd)}})
    # the exact landscape norms' reference: a fine grid (a Riemann sum, error O(1/FINE))
    for p in [1, 2]:
        a = Amplitude(metric="landscape", metric_params={"p": p, "n_bins": FINE, "n_layers": LAYERS},
                      order=None).fit_transform(X)[0]
        amps.setdefault("landscape_fine", []).append(
            {"params": {"p": p, "n_bins": FINE, "n_layers": LAYERS}, "values": {str(k): float(a[k]) for k in range(nd)}})
    res["amplitude"] = amps
    return res


def persim(dgm):
    res = {}
    for k, ((b0, b1), (p0, p1)) in enumerate(image_ranges(dgm)):
        be = np.linspace(b0, b1, PIXELS + 1)
        pe = np.linspace(p0, p1, PIXELS + 1)
        f = np.array(finite(dgm[k]), dtype=float).reshape(-1, 2)
        img = persim_transform(f, skew=True, resolution=(PIXELS, PIXELS), weight=images_weights.persistence,
                               weight_params={"n": 1.0}, kernel=images_kernels.gaussian,
                               kernel_params={"sigma": [[SIGMA ** 2, 0.0], [0.0, SIGMA ** 2]]},
                               _bpnts=be, _ppnts=pe)
        # persim's image is [birth][persistence]: store [persistence][birth]
        res[str(k)] = {"birth_edges": be.tolist(), "pers_edges": pe.tolist(), "values": img.T.tolist()}
    return res


def gudhi_refs(dgm):
    res = {"landscape": {}, "entropy": {}}
    for k, bars in enumerate(dgm):
        f = np.array(finite(bars), dtype=float).reshape(-1, 2)
        if len(f) == 0:
            continue
        lo, hi = float(f.min()), float(f.max())
        if lo == hi:
            continue
        ls = GLandscape(num_landscapes=LAYERS, resolution=SAMPLES, sample_range=[lo, hi],
                        keep_endpoints=True).fit_transform([f])[0]
        res["landscape"][str(k)] = {"range": [lo, hi], "values": ls.reshape(LAYERS, SAMPLES).tolist()}
        if (f[:, 1] - f[:, 0]).sum() > 0:
            res["entropy"][str(k)] = float(GEntropy(mode="scalar").fit_transform([f])[0][0])
    return res


def hera(A, B, q):
    """hera's Wasserstein distance; hera 3.14.0a2 crashes (segfault) on a diagram whose points
    are all essential, so there the essential points (births sorted, same count, else inf) are
    matched by hand and hera gets the finite points only."""
    fa, fb = A[np.isfinite(A[:, 1])], B[np.isfinite(B[:, 1])]
    if len(fa) and len(fb) or (len(fa) == len(A) and len(fb) == len(B)):
        return float(gudhi.hera.wasserstein_distance(A, B, order=q, internal_p=np.inf, delta=1e-12))
    ea, eb = np.sort(A[~np.isfinite(A[:, 1]), 0]), np.sort(B[~np.isfinite(B[:, 1]), 0])
    if len(ea) != len(eb):
        return math.inf
    fin = float(gudhi.hera.wasserstein_distance(fa, fb, order=q, internal_p=np.inf, delta=1e-12))
    return float((fin ** q + np.sum(np.abs(ea - eb) ** q)) ** (1 / q))


def distances(dg):
    pairs = [("random20_d2", "projective_plane_csv_d2"), ("random20_d2", "sphere_3_192_d2"),
             ("sphere_3_192_d2", "rp2_600_d1"), ("hand_infinite", "hand_duplicates"),
             ("hand_infinite", "hand_single"), ("hand_empty_dim", "hand_single"),
             ("hand_all_empty", "hand_duplicates"), ("rp2_600_d1", "o3_1024_d2_t1.8"),
             ("hand_infinite", "hand_infinite")]
    out = []
    for a, b in pairs:
        for k in range(min(len(dg[a]), len(dg[b]))):
            A = np.array([[x, np.inf if y is None else y] for x, y in dg[a][k]], dtype=float).reshape(-1, 2)
            B = np.array([[x, np.inf if y is None else y] for x, y in dg[b][k]], dtype=float).reshape(-1, 2)
            # hera/GUDHI want no zero-length points
            A = A[A[:, 1] > A[:, 0]]
            B = B[B[:, 1] > B[:, 0]]
            row = {"a": a, "b": b, "dim": k, "bottleneck": float(gudhi.bottleneck_distance(A, B))}
            for q in [1, 2]:
                row[f"wasserstein_{q}"] = hera(A, B, q)
            out.append({kk: (None if isinstance(v, float) and math.isinf(v) else v) for kk, v in row.items()})
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    dg = diagrams()
    meta = {"samples": SAMPLES, "layers": LAYERS, "pixels": PIXELS, "sigma": SIGMA, "fine": FINE,
            "versions": {"gudhi": gudhi.__version__, "numpy": np.__version__,
                         "giotto-tda": __import__("gtda").__version__,
                         "persim": __import__("importlib.metadata").metadata.version("persim")}}
    files = {
        "diagrams.json": {"meta": meta, "diagrams": dg},
        "giotto.json": {name: giotto(d) for name, d in dg.items()},
        "persim.json": {name: persim(d) for name, d in dg.items()},
        "gudhi.json": {name: gudhi_refs(d) for name, d in dg.items()},
        "distances.json": distances(dg),
    }
    for fname, obj in files.items():
        with open(os.path.join(OUT, fname), "w") as f:
            json.dump(obj, f, separators=(",", ":"))
            f.write("\n")
        print(fname, os.path.getsize(os.path.join(OUT, fname)), "bytes")


if __name__ == "__main__":
    main()
