"""The seed functions: small NumPy programs every part of graphc is shown on.

`EXAMPLE_ARGS` maps each function to example arguments (specs of shape and dtype), so
`graphc dump examples/seeds.py:mlp` needs no --arg.
"""

import numpy as np

import graphc
from graphc import numpy as gnp
from graphc import spec


def poly(x):
    """f(x) = 3x^2 + 2x + 1"""
    return 3 * x**2 + 2 * x + 1


def sqdiff(x, y):
    """sum((x - y)^2)"""
    return np.sum((x - y) ** 2)


def mlp(x, W1, b1, W2, b2):
    """A two-layer perceptron on a batch of column vectors: W2 @ sigmoid(W1 @ x + b1) + b2."""
    return W2 @ gnp.sigmoid(W1 @ x + b1[:, None]) + b2[:, None]


def mlp_loss(x, y, W1, b1, W2, b2):
    """Squared error of the two-layer perceptron: sum((mlp(x) - y)^2)."""
    return np.sum((mlp(x, W1, b1, W2, b2) - y) ** 2)


def convnet(x, w1, b1, w2, b2, W, b):
    """The seed ConvNet's forward pass on NCHW images: conv -> relu -> maxpool -> conv -> relu ->
    maxpool -> flatten -> dense, giving log-probabilities of 10 classes."""
    h = gnp.relu(gnp.conv2d(x, w1) + b1[None, :, None, None])
    h = gnp.max_pool2d(h, 2)
    h = gnp.relu(gnp.conv2d(h, w2) + b2[None, :, None, None])
    h = gnp.max_pool2d(h, 2)
    h = h.reshape(h.shape[0], -1)
    return gnp.log_softmax(h @ W + b, axis=1)


EXAMPLE_ARGS = {
    "poly": (2.0,),
    "sqdiff": (spec("f64[2]"), spec("f64[2]")),
    "mlp": (spec("f32[4,16]"), spec("f32[8,4]"), spec("f32[8]"), spec("f32[3,8]"), spec("f32[3]")),
    "mlp_loss": (
        spec("f32[4,16]"),
        spec("f32[3,16]"),
        spec("f32[8,4]"),
        spec("f32[8]"),
        spec("f32[3,8]"),
        spec("f32[3]"),
    ),
    "convnet": (
        spec("f32[64,1,28,28]"),
        spec("f32[8,1,3,3]"),
        spec("f32[8]"),
        spec("f32[16,8,3,3]"),
        spec("f32[16]"),
        spec("f32[400,10]"),
        spec("f32[10]"),
    ),
}


if __name__ == "__main__":
    for name, args in EXAMPLE_ARGS.items():
        print(f"# {name}: {globals()[name].__doc__.splitlines()[0]}")
        print(graphc.trace(globals()[name], *args).pretty())
        print()
