"""Train a small ConvNet on scikit-learn's 8x8 digits with graphc.nn:
conv -> relu -> maxpool -> conv -> relu -> maxpool -> flatten -> dense (padding 1 keeps the
8x8 images at 8x8, 4x4 and 2x2).

The training step (forward, loss, backward, optimizer update) is one compiled executable; the
script prints per-epoch loss and accuracy, compile time, step time and kernel counts.

    python examples/cnn_digits.py [--epochs 15] [--batch 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import graphc
from graphc import data, nn


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()

    (x, y), (xt, yt) = data.digits(test_fraction=0.2, seed=0)
    nn.seed(0)
    model = nn.Chain(
        nn.Conv2d(1, 16, 3, padding=1, act=nn.relu),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, act=nn.relu),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(32 * 2 * 2, 10),
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
        f"in one executable; other ops: {dict(sorted(low.optimized.op_counts().items()))}"
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
        print(f"epoch {epoch:3d}  loss {np.mean(losses):.4f}  test acc {acc:.3f}")
    print(
        f"step time: {1e6 * np.median(step_times):.0f} us median over {len(step_times)} "
        f"steps (batch {args.batch}); compiles: {step.compiles}"
    )
    print(f"final test accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
