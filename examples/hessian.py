"""The seed's Hessian: destructure a Chain(Dense(2 => 1, tanh), Dense(1 => 1)) into a flat
vector of its 5 parameters, write the loss sum(abs2(m(x))) as a function of that vector, and
take its 5x5 Hessian with graphc.hessian (forward-over-reverse), checked against finite
differences of the gradient.

graphc.nn is batch first, so the seed's x of shape 2x16 (features x batch, Flux's layout) is
passed as x.T.

    python examples/hessian.py
"""

from __future__ import annotations

import numpy as np

import graphc
from graphc import nn


def main() -> np.ndarray:
    rng = np.random.default_rng(0)
    m = nn.Chain(
        nn.Dense(2, 1, nn.tanh, dtype=np.float64, rng=rng),
        nn.Dense(1, 1, dtype=np.float64, rng=rng),
    )
    m[0].bias[:] = 0.1  # make every parameter matter
    print(m)
    x = rng.standard_normal((2, 16))  # the seed's layout: features x batch

    flat, rebuild = graphc.destructure(m)
    print("flat parameters:", flat, "shape", flat.shape)

    def loss(p):
        return np.sum(np.abs(rebuild(p)(x.T)) ** 2)  # sum(abs2.(m(x)))

    H = graphc.hessian(loss)(flat)
    np.set_printoptions(precision=5, suppress=True)
    print("Hessian (5x5):")
    print(H)

    g = graphc.grad(loss, backend="interpreter")
    eps = 1e-6
    fd = np.stack([(g(flat + eps * e) - g(flat - eps * e)) / (2 * eps) for e in np.eye(5)])
    err = np.max(np.abs(H - fd))
    print(f"symmetric: {np.allclose(H, H.T)}; max |H - finite differences| = {err:.2e}")
    assert H.shape == (5, 5) and err < 1e-6
    return H


if __name__ == "__main__":
    main()
