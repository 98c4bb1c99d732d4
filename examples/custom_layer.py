"""A user-defined layer: the seed's `Affine` (W and b) made trainable with one decorator and
composed in a Chain with built-in layers, then trained on the 8x8 digits.

Three ways to define it, all of which train:

* `@nn.layer` on a plain class (Flux's `@layer`): it becomes an nn.Module (printing, paths,
  scopes, state/save/load);
* subclassing `nn.Module` (PyTorch style);
* a plain `@graphc.pytree` class: any pytree with array leaves works with the optimizers and
  in a Chain, it just is not a Module.

    python examples/custom_layer.py
"""

from __future__ import annotations

import time

import numpy as np

import graphc
from graphc import data, nn


@nn.layer
class Affine:
    """y = x @ W.T + b (batch first)."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator):
        self.W = nn.glorot_uniform((n_out, n_in), rng)
        self.b = np.zeros(n_out, np.float32)

    def __call__(self, x):
        return x @ self.W.T + self.b

    def extra_repr(self) -> str:  # optional: how the layer prints
        return f"{self.W.shape[1]} => {self.W.shape[0]}"


@graphc.pytree
class PlainAffine:
    """The same, as a plain pytree (no nn.Module machinery)."""

    def __init__(self, W, b):
        self.W, self.b = W, b

    def __call__(self, x):
        return x @ self.W.T + self.b


def train(model, x, y, xt, yt, epochs: int = 20) -> float:
    step = nn.train_step(model, nn.cross_entropy, nn.SGD(0.1, momentum=0.9))
    opt_state = step.init(model)
    predict = graphc.jit(lambda m, x: m(x))
    t0 = time.perf_counter()
    for epoch in range(epochs):
        losses = []
        for bx, by in data.batches(x, y, batch_size=64, seed=epoch):
            model, opt_state, loss = step(model, opt_state, bx, by)
            losses.append(float(loss))
        if epoch % 5 == 4:
            print(
                f"  epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}  "
                f"test acc {nn.accuracy(predict(model, xt), yt):.3f}"
            )
    print(f"  {time.perf_counter() - t0:.2f} s for {epochs} epochs (including compilation)")
    return nn.accuracy(predict(model, xt), yt)


def main() -> None:
    (x, y), (xt, yt) = data.digits()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    rng = np.random.default_rng(0)

    model = nn.Chain(Affine(64, 32, rng), nn.relu, Affine(32, 10, rng))
    print(model)
    print("parameters:", list(model.parameters()))
    g = graphc.trace(lambda m, x: m(x), model, x[:4])
    print("scopes in the traced graph:", sorted({n.meta.scope for n in g.equations}))
    acc = train(model, x, y, xt, yt)
    print(f"@nn.layer Affine: test accuracy {acc:.3f}")

    plain = nn.Chain(
        PlainAffine(nn.glorot_uniform((32, 64), rng), np.zeros(32, np.float32)),
        nn.relu,
        nn.Dense(32, 10, rng=rng),
    )
    print(plain)
    acc = train(plain, x, y, xt, yt)
    print(f"@graphc.pytree Affine in a Chain: test accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
