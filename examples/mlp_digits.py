"""Train a multilayer perceptron on scikit-learn's 8x8 digits with graphc.nn.

The whole training step (forward, cross-entropy, backward, Adam update) is one graph compiled
into one executable; the script prints per-epoch loss and accuracy, the compile time, the time
per step and the number of fused kernels.

    python examples/mlp_digits.py [--epochs 30] [--batch 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import graphc
from graphc import data, nn


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()

    (x, y), (xt, yt) = data.digits(test_fraction=0.2, seed=0)
    nn.seed(0)
    model = nn.Chain(
        nn.Flatten(), nn.Dense(64, 128, nn.relu), nn.Dense(128, 64, nn.relu), nn.Dense(64, 10)
    )
    model.summary()
    step = nn.train_step(model, nn.cross_entropy, nn.Adam(args.lr))
    predict = graphc.jit(lambda m, x: m(x))
    opt_state = step.init(model)

    xb, yb = x[: args.batch], y[: args.batch]
    t0 = time.perf_counter()
    step(model, opt_state, xb, yb)  # traces and compiles; the result is discarded
    compile_s = time.perf_counter() - t0
    print(f"compile time (trace + optimize + codegen + Numba): {compile_s:.2f} s")

    low = step.lower(model, opt_state, xb, yb)
    kernels = sum(n.op == "fused" for n in low.optimized.equations)
    print(
        f"train step: {len(low.traced.equations)} traced equations -> {kernels} fused kernels "
        f"in one executable ({len(low.fallbacks)} NumPy fallbacks: "
        f"{', '.join(sorted(set(low.fallbacks)))})"
    )

    step_times, acc = [], 0.0
    for epoch in range(1, args.epochs + 1):
        losses = []
        for bx, by in data.batches(x, y, batch_size=args.batch, seed=epoch):
            t = time.perf_counter()
            model, opt_state, loss = step(model, opt_state, bx, by)
            step_times.append(time.perf_counter() - t)
            losses.append(float(loss))
        acc = nn.accuracy(predict(model, xt), yt)
        train_acc = nn.accuracy(predict(model, x), y)
        print(
            f"epoch {epoch:3d}  loss {np.mean(losses):.4f}  train acc {train_acc:.3f}  "
            f"test acc {acc:.3f}"
        )
    print(
        f"step time: {1e6 * np.median(step_times):.0f} us median over {len(step_times)} "
        f"steps (batch {args.batch}); compiles: {step.compiles}"
    )
    print(f"final test accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
