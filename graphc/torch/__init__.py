"""`graphc.torch`: PyTorch's API on graphc's compiler. Port a PyTorch script by changing its
imports:

    import graphc.torch as torch
    import graphc.torch.nn as nn
    import graphc.torch.nn.functional as F
    from graphc.torch import optim

Tensors are lazy: operations record graphc IR and nothing runs until a value is needed
(`.item()`, `.numpy()`, printing, Python control flow on a value, `optimizer.step()`). Then
everything pending (forward, the backward graph graphc's reverse-mode pass derives for
`.backward()`, the optimizer's update) is optimized, fused and compiled as one executable,
cached by the recorded structure: the second iteration of a training loop runs the first
one's compiled code. `torch.compile(train_step)` replays a captured step without running its
Python. `torch.viz(loss)` draws what was recorded, forward and backward; `torch.graph(t)` is
it as a graphc Graph; `GRAPHC_DEBUG=1` reports every realization.

Example:
    >>> import graphc.torch as torch
    >>> a = torch.tensor(230.3, dtype=torch.float64, requires_grad=True)
    >>> b = torch.tensor(33.2, dtype=torch.float64, requires_grad=True)
    >>> f = (a / b - a) * (b / a + a + b) * (a - b)
    >>> f.backward()
    >>> print(f"{a.grad.item():.8f} {b.grad.item():.8f}")
    -153284.83150602 3815.03894415
"""

from types import SimpleNamespace

from graphc.torch import autograd, cuda, nn, optim, utils
from graphc.torch._compile import compile
from graphc.torch._creation import (
    arange,
    as_tensor,
    device,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    initial_seed,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    seed,
    tensor,
    zeros,
    zeros_like,
)
from graphc.torch._dtypes import (
    bool_,
    double,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    short,
    uint8,
)
from graphc.torch._engine import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from graphc.torch._functions import (
    abs,
    all,
    allclose,
    amax,
    amin,
    any,
    argmax,
    argmin,
    bmm,
    cat,
    clip,
    concat,
    cos,
    dot,
    eq,
    equal,
    exp,
    flatten,
    gt,
    is_tensor,
    isclose,
    log,
    log_softmax,
    lt,
    max,
    maximum,
    mean,
    min,
    minimum,
    mm,
    mul,
    numel,
    permute,
    prod,
    relu,
    reshape,
    sigmoid,
    sin,
    softmax,
    sqrt,
    square,
    squeeze,
    stack,
    std,
    sum,
    tanh,
    transpose,
    unsqueeze,
    var,
)
from graphc.torch._inspect import cache_info, graph, lowered, viz
from graphc.torch._io import load, save
from graphc.torch._tensor import Size, Tensor, clamp, div, matmul, pow, realize, where  # noqa: I001

float = float32  # noqa: A001 (PyTorch's names for dtypes)
int = int32  # noqa: A001
bool = bool_  # noqa: A001
inference_mode = no_grad
backends = SimpleNamespace(
    mps=SimpleNamespace(is_available=lambda: False),
    cudnn=SimpleNamespace(deterministic=False, benchmark=False),
)


def set_num_threads(n: object) -> None:
    """Accepted for compatibility; graphc's kernels take their thread count from
    GRAPHC_THREADS."""


def get_num_threads() -> object:
    import os

    return os.cpu_count() or 1


__all__ = [
    "Size",
    "Tensor",
    "abs",
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "arange",
    "argmax",
    "argmin",
    "as_tensor",
    "autograd",
    "backends",
    "bmm",
    "bool",
    "bool_",
    "cache_info",
    "cat",
    "clamp",
    "clip",
    "compile",
    "concat",
    "cos",
    "cuda",
    "device",
    "div",
    "dot",
    "double",
    "empty",
    "empty_like",
    "enable_grad",
    "eq",
    "equal",
    "exp",
    "eye",
    "flatten",
    "float",
    "float16",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "full_like",
    "get_default_dtype",
    "get_num_threads",
    "graph",
    "gt",
    "half",
    "inference_mode",
    "initial_seed",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "is_grad_enabled",
    "is_tensor",
    "isclose",
    "linspace",
    "load",
    "log",
    "log_softmax",
    "long",
    "lowered",
    "lt",
    "manual_seed",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mm",
    "mul",
    "nn",
    "no_grad",
    "numel",
    "ones",
    "ones_like",
    "optim",
    "permute",
    "pow",
    "prod",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "realize",
    "relu",
    "reshape",
    "save",
    "seed",
    "set_default_dtype",
    "set_grad_enabled",
    "set_num_threads",
    "short",
    "sigmoid",
    "sin",
    "softmax",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "sum",
    "tanh",
    "tensor",
    "transpose",
    "uint8",
    "unsqueeze",
    "utils",
    "var",
    "viz",
    "where",
    "zeros",
    "zeros_like",
]
