#!/usr/bin/env python3
"""Fits the piecewise polynomial of Φ (the normal CDF) that runtime/src/ops/gelu.rs uses.

gelu(x) = x·Φ(x). On [-6, 6], cut into 32 intervals of width 3/8, Φ(b + d) for d in [0, 3/8]
(b the interval's left end) is a degree-6 polynomial in d per interval. The fit minimises the
maximum *relative* error (Lawson's iteratively reweighted least squares on 200 Chebyshev nodes of
d in [-1e-5, 3/8 + 1e-5], a little wider than the interval so that an index computed from a
rounded x·8/3 still evaluates inside the fitted range), so the negative tail, where Φ is small,
keeps the accuracy of the positive side relative to gelu's value. Coefficients are rounded to f32.

Needs numpy only (Φ from math.erfc, accurate to ~1e-16 relative in the tail too).

usage: python3 tools/fit_gelu.py   (prints the Rust table)
"""
import math

import numpy as np

X0, W, N, DEG = -6.0, 0.375, 32, 6


def phi(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def fit(b):
    m = 200
    lo, hi = -1e-5, W + 1e-5
    k = np.arange(m)
    d = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / m)
    y = np.array([phi(b + v) for v in d])
    w = 1.0 / y
    v = np.vander(d, DEG + 1, increasing=True)
    lw = np.ones(m)
    for _ in range(60):
        s = w * np.sqrt(lw)
        c, *_ = np.linalg.lstsq(v * s[:, None], y * s, rcond=None)
        e = np.abs(v @ c - y) * w
        lw = lw * e
        lw /= lw.sum()
    return [np.float32(x) for x in c]


def main():
    cs = [fit(X0 + i * W) for i in range(N)]
    print(f"const PHI: [[f32; {N}]; {DEG + 1}] = [")
    for k in range(DEG + 1):
        print("    [")
        for i in range(0, N, 4):
            row = ", ".join(np.format_float_scientific(cs[j][k], unique=True, trim="0") for j in range(i, i + 4))
            print(f"        {row},")
        print("    ],")
    print("];")


if __name__ == "__main__":
    main()
