"""`graphc.nn`: layers, losses, optimizers and a compiled training step, built on graphc's
public API (in the spirit of Flux.jl and PyTorch).

Models are `Module`s, registered pytrees, so they go through `graphc.jit` and `graphc.grad` as
arguments and gradients come back with the model's structure. `nn.train_step` traces forward,
loss, backward and optimizer update into one graph compiled as one executable.

Example:
    >>> from graphc import nn
    >>> model = nn.Chain(nn.Dense(64, 32, nn.relu), nn.Dense(32, 10))
    >>> step = nn.train_step(model, nn.cross_entropy, nn.Adam(1e-3))
    >>> opt_state = step.init(model)
    >>> model, opt_state, loss = step(model, opt_state, x, y)
    >>> model.summary()

Train/eval mode and randomness: `model(x)` is eval mode; `model(x, train=True, key=nn.key(0))`
is train mode (Dropout masks are a pure function of the key and the layer's path);
`y, model = nn.apply(model, x, train=True, key=k)` also returns updated state (BatchNorm's
running statistics). See `graphc.nn.module` for details.

Recurrent layers (`nn.RNN`, `nn.LSTM`, `nn.GRU` and their cells) keep PyTorch's gate order,
parameter layout and initialisation, and loop over time with one `graphc.scan`: see
`graphc.nn.recurrent`.
"""

from graphc.nn.activations import (
    gelu,
    identity,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)
from graphc.nn.init import (
    glorot_normal,
    glorot_uniform,
    kaiming_normal,
    kaiming_uniform,
    normal,
    ones,
    seed,
    zeros,
)
from graphc.nn.io import load, save
from graphc.nn.layers import (
    AvgPool2d,
    BatchNorm,
    Chain,
    Conv2d,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
)
from graphc.nn.losses import binary_cross_entropy, cross_entropy, mse
from graphc.nn.module import Context, Module, apply, current_context, layer
from graphc.nn.optim import SGD, Adam, AdamState, AdamW, Optimizer, SGDState
from graphc.nn.random import bernoulli, fold_in, key, split, uniform
from graphc.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from graphc.nn.train import TrainStep, accuracy, train_step
from graphc.nn.tree import (
    StateError,
    combine,
    load_state,
    modules,
    parameters,
    partition,
    state,
)

__all__ = [
    "Adam",
    "AdamState",
    "AdamW",
    "AvgPool2d",
    "BatchNorm",
    "Chain",
    "Context",
    "Conv2d",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "LayerNorm",
    "Linear",
    "MaxPool2d",
    "Module",
    "Optimizer",
    "RNN",
    "RNNCell",
    "SGD",
    "SGDState",
    "StateError",
    "TrainStep",
    "accuracy",
    "apply",
    "bernoulli",
    "binary_cross_entropy",
    "combine",
    "cross_entropy",
    "current_context",
    "fold_in",
    "gelu",
    "glorot_normal",
    "glorot_uniform",
    "identity",
    "kaiming_normal",
    "kaiming_uniform",
    "key",
    "layer",
    "leaky_relu",
    "load",
    "load_state",
    "log_softmax",
    "modules",
    "mse",
    "normal",
    "ones",
    "parameters",
    "partition",
    "relu",
    "save",
    "seed",
    "sigmoid",
    "softmax",
    "softplus",
    "split",
    "state",
    "tanh",
    "train_step",
    "uniform",
    "zeros",
]
