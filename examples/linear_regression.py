"""Linear regression by gradient descent, Flux style: W, b and loss(x, y) = sum((y - (W x + b))^2).

Run: python examples/linear_regression.py
"""

import numpy as np

import graphc

rng = np.random.default_rng(0)
W_true, b_true = rng.random((2, 5)), rng.random(2)
xs = rng.random((5, 100))
ys = W_true @ xs + b_true[:, None]

W, b = rng.random((2, 5)), rng.random(2)


def loss(W, b, x, y):
    return np.sum((y - (W @ x + b[:, None])) ** 2) / x.shape[1]


step = graphc.jit(lambda W, b, x, y: graphc.withgradient(loss, W, b, x, y))
lr = 0.3
for epoch in range(301):
    value, (gW, gb, _, _) = step(W, b, xs, ys)
    W, b = W - lr * gW, b - lr * gb
    if epoch % 50 == 0:
        print(f"epoch {epoch:3d}  loss {float(value):.6f}")
print("learned b:", np.round(b, 3), " true b:", np.round(b_true, 3))
