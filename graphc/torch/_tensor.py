"""`Tensor`: PyTorch's tensor on graphc's lazy engine.

Operations record graphc IR (see `_engine` and `_ops`); asking for a value (`item()`,
`numpy()`, `tolist()`, printing, `bool()`/`float()`, Python control flow on a value) realizes
everything pending as one compiled executable. Semantics follow PyTorch where it differs from
NumPy: `dim=`/`keepdim=`, category-based type promotion with float32 as the default dtype,
true division of integers, `max(dim)` returning values and indices, `var`/`std` unbiased by
default, `squeeze(dim)` leaving a dimension of another size alone.

Example:
    >>> import graphc.torch as torch
    >>> a = torch.tensor(2.0, requires_grad=True)
    >>> b = a * a + 3 * a
    >>> b.backward()
    >>> a.grad
    tensor(7.)
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from graphc import numpy as gnp
from graphc.ir import Aval, GraphcError
from graphc.torch import _dtypes
from graphc.torch._dtypes import get_default_dtype, promote_types, result_type, to_dtype
from graphc.torch._engine import Storage, engine, is_grad_enabled, no_grad
from graphc.torch._ops import as_dtype_of, float_dtype, node_of, record, record_into
from graphc.trace import ArgumentError, user_location

__all__ = ["Size", "Tensor", "as_tensor_arg", "grad_fn_name", "realize"]


class Size(tuple):
    """A tensor's shape (a tuple, as PyTorch's `torch.Size` is)."""

    def numel(self) -> int:
        return math.prod(self)

    def __repr__(self) -> str:
        return f"torch.Size({list(self)})"


class MaxResult(NamedTuple):
    """`t.max(dim)` and `t.min(dim)`: the values and their indices."""

    values: Any
    indices: Any


def realize(*tensors: Any) -> None:
    """Compute every pending value now (one executable); the tensors are optional.

    Example:
        >>> torch.realize()
    """
    engine.realize("torch.realize()")


def _pending(t: Tensor, why: str) -> np.ndarray:
    s = t._s
    if s.data is None:
        engine.realize(why)
    if engine.capture is not None:
        engine.capture.python_value(why)
    return s.data  # type: ignore[return-value]


def _dims(d: Any, ndim: int) -> tuple[int, ...] | None:
    if d is None:
        return None
    ds = (d,) if isinstance(d, (int, np.integer)) else tuple(d)
    out = []
    for a in ds:
        a = int(a)
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ArgumentError(
                f"dimension {a} is out of range for a tensor of {ndim} dimensions",
                user_location(),
            )
        out.append(a % max(ndim, 1))
    return tuple(out)


def _shape_args(shape: tuple) -> tuple[int, ...]:
    """`view(2, 3)`, `view((2, 3))` and `view(torch.Size([2, 3]))` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def as_tensor_arg(x: Any) -> Any:
    """An operand: tensors stay, Python numbers stay (weak), arrays become tensors."""
    if isinstance(x, Tensor) or type(x) in (bool, int, float):
        return x
    if isinstance(x, (np.ndarray, np.generic)):
        return Tensor._from_array(np.asarray(x))
    if isinstance(x, (list, tuple)):
        from graphc.torch._creation import tensor

        return tensor(x)
    raise ArgumentError(f"expected a tensor or a number, got {type(x).__name__}", user_location())


def _sig(x: Any) -> Any:
    return (x.dtype, x.dim()) if isinstance(x, Tensor) else x


# ---------------------------------------------------------------------------------------------
# template functions (graphc.numpy on tracers; see _ops)


def _t_elementwise(*args: Any) -> Any:
    *traced, fn, dt, layout = args
    it = iter(traced)
    full = [next(it) if v is _TRACED else v for v in layout]
    return fn(*[as_dtype_of(x, dt) for x in full])


_TRACED = object()


def _layout(operands: Sequence[Any], dt: np.dtype) -> tuple[list, tuple]:
    """The traced operands of an elementwise operation in dtype `dt` and where they go among
    the static ones: Python floats are traced (a changing number does not change the graph),
    ints and bools are static (ints become floats in a floating-point operation)."""
    traced, layout = [], []
    for x in operands:
        if isinstance(x, Tensor):
            traced.append(x)
            layout.append(_TRACED)
        elif type(x) is float or (type(x) is int and dt.kind == "f"):
            traced.append(float(x))
            layout.append(_TRACED)
        else:
            layout.append(x)
    return traced, tuple(layout)


def elementwise(name: str, fn: Callable, operands: Sequence[Any], dt: np.dtype) -> Tensor:
    """`fn(*operands)` elementwise with every operand in dtype `dt`."""
    traced, layout = _layout(operands, dt)
    return record(_t_elementwise, traced, (fn, dt, layout), name=name)[0]


def _binary(name: str, fn: Callable, kind: str = "arith") -> Callable:
    """A binary operator or method. kind: "arith" (the promoted dtype), "div" (true division:
    integers give the default float dtype), "compare" (bool result), "logical"."""

    def op(self: Tensor, other: Any, reflected: bool = False) -> Tensor:
        other = as_tensor_arg(other)
        a, b = (other, self) if reflected else (self, other)
        dt = result_type(_sig(a), _sig(b))
        if kind == "div" and dt.kind != "f":
            dt = get_default_dtype()
        if kind == "logical":
            dt = np.dtype(np.bool_)
        return elementwise(name, fn, (a, b), dt)

    return op


def _unary(name: str, fn: Callable, floating: bool = False) -> Callable:
    """An elementwise method; `floating`: of integers and bools too, in the default float
    dtype (PyTorch's `int_tensor.exp()` is float32)."""

    def method(self: Tensor) -> Tensor:
        dt = float_dtype(self.dtype) if floating else self.dtype
        return record(_t_unary, [self], (fn, dt), name=f".{name}()")[0]

    method.__name__ = name
    method.__doc__ = f"Elementwise {name}."
    return method


def _floor_divide(a: Any, b: Any) -> Any:
    return _int_via_float(np.floor_divide, a, b)


def _remainder(a: Any, b: Any) -> Any:
    return _int_via_float(np.remainder, a, b)


def _int_via_float(fn: Callable, a: Any, b: Any) -> Any:
    # graphc's // and % take floats; integers go through float64, exact for |values| < 2**53
    dt = a.dtype if hasattr(a, "dtype") else b.dtype
    if dt.kind == "f":
        return fn(a, b)
    f64 = np.dtype(np.float64)
    return gnp.astype(fn(as_dtype_of(a, f64), as_dtype_of(b, f64)), dt)


def _t_unary(x: Any, fn: Callable, dt: np.dtype) -> Any:
    return fn(as_dtype_of(x, dt))


def _t_reduce(x: Any, fn: Callable, axes: Any, keepdims: bool, dt: np.dtype) -> Any:
    return fn(as_dtype_of(x, dt), axis=axes, keepdims=keepdims)


def _t_var(x: Any, axes: Any, keepdims: bool, ddof: int, sqrt: bool) -> Any:
    v = np.var(x, axis=axes, keepdims=keepdims, ddof=ddof)
    return np.sqrt(v) if sqrt else v


def _t_arg(x: Any, fn: Callable, axis: Any, keepdims: bool) -> Any:
    if axis is None:
        return gnp.astype(fn(np.reshape(x, (-1,))), np.int64)
    return gnp.astype(fn(x, axis=axis, keepdims=keepdims), np.int64)


def _t_extreme(x: Any, fn: Callable, arg: Callable, axis: int, keepdims: bool) -> Any:
    return fn(x, axis=axis, keepdims=keepdims), gnp.astype(
        arg(x, axis=axis, keepdims=keepdims), np.int64
    )


def _t_reshape(x: Any, shape: tuple) -> Any:
    return np.reshape(x, shape)


def _t_transpose(x: Any, perm: tuple) -> Any:
    return np.transpose(x, perm)


def _t_broadcast(x: Any, shape: tuple) -> Any:
    return np.broadcast_to(x, shape)


def _t_tile(x: Any, reps: tuple) -> Any:
    return np.tile(x, reps)


def _t_cast(x: Any, dt: np.dtype) -> Any:
    return gnp.astype(x, dt)


def _t_getitem(x: Any, *args: Any) -> Any:
    *tensors, structure = args
    return x[_rebuild_key(structure, tensors)]


def _t_setitem(x: Any, v: Any, mask: _Frozen, source: _Frozen, selection: tuple) -> Any:
    # x with x[key] = v for a key of known positions: each selected element reads its value
    # from v (broadcast to the selection's shape) through a gather, the others keep x
    vb = np.reshape(np.broadcast_to(as_dtype_of(v, x.dtype), selection), (-1,))
    placed = np.reshape(gnp.take(vb, source.value), x.shape)
    return np.where(mask.value, placed, x)


class _Frozen:
    """An array in a template's static arguments: hashed and compared by content."""

    __slots__ = ("value", "_key")

    def __init__(self, value: np.ndarray):
        self.value = value
        self._key = (value.shape, value.dtype.str, value.tobytes())

    shape = property(lambda self: self.value.shape)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Frozen) and self._key == other._key


class _Slice(tuple):
    """A slice in a template's static arguments (slices are not hashable before Python
    3.12)."""

    def value(self) -> slice:
        return slice(*self)


def _rebuild_key(structure: tuple, tensors: Sequence[Any]) -> Any:
    it = iter(tensors)
    out = []
    for part in structure:
        if part is _TRACED:
            out.append(next(it))
        elif isinstance(part, (_Frozen, _Slice)):
            out.append(part.value() if isinstance(part, _Slice) else part.value)
        else:
            out.append(part)
    return tuple(out)


def _index_parts(key: Any) -> tuple[tuple, list]:
    """A key of `x[key]` as a static structure and its tensor indices (traced). Boolean masks
    have data-dependent shapes: they are realized here and become integer indices."""
    if not isinstance(key, tuple):
        key = (key,)
    structure: list[Any] = []
    tensors: list[Any] = []
    for k in key:
        if isinstance(k, Tensor):
            if k.dtype == np.bool_:
                idx = np.nonzero(_pending(k, "a boolean mask selects elements"))
                for ix in idx:
                    structure.append(_Frozen(ix.astype(np.int64)))
                continue
            if k.dtype.kind not in "iu":
                raise ArgumentError(
                    f"tensors used as indices must be integers or booleans, got {k.dtype}",
                    user_location(),
                )
            structure.append(_TRACED)
            tensors.append(k)
        elif isinstance(k, (list, np.ndarray)):
            arr = np.asarray(k)
            if arr.dtype == np.bool_:
                structure.extend(_Frozen(ix.astype(np.int64)) for ix in np.nonzero(arr))
            else:
                structure.append(_Frozen(arr.astype(np.int64)))
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            structure.append(int(k))
        elif isinstance(k, slice):
            structure.append(_Slice((k.start, k.stop, k.step)))
        elif k is None or k is Ellipsis:
            structure.append(k)
        else:
            raise ArgumentError(f"cannot index a tensor with {type(k).__name__}", user_location())
    return tuple(structure), tensors


def grad_fn_name(t: Tensor) -> str | None:
    """The recorded op a non-leaf tensor came from (PyTorch's `grad_fn`), e.g. `mul`."""
    if t.is_leaf:
        return None
    n = t._s.node
    return None if n is None else n.op


# ---------------------------------------------------------------------------------------------
# the tensor


class Tensor:
    """A tensor: PyTorch's API, recorded as graphc IR and compiled when a value is needed.

    Example:
        >>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        >>> y = (x @ x).sum()
        >>> y.backward()
        >>> x.grad
        tensor([[ 7., 11.],
                [ 9., 13.]])
    """

    __slots__ = ("_s", "_rg", "_leaf", "grad", "_name", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, *args: Any, **kwargs: Any):
        # torch.Tensor(data) copies data as float32, torch.Tensor(2, 3) is uninitialised
        # storage (zeros here)
        if args and all(isinstance(a, (int, np.integer)) for a in args):
            arr = np.zeros(tuple(int(a) for a in args), get_default_dtype())
        elif len(args) == 1:
            arr = np.array(
                args[0].numpy() if isinstance(args[0], Tensor) else args[0],
                dtype=get_default_dtype(),
            )
        else:
            arr = np.zeros(0, get_default_dtype())
        self._init(Storage(arr, None, Aval(arr.shape, arr.dtype), False), False)

    def _init(self, s: Storage, requires_grad: bool) -> None:
        self._s = s
        self._rg = requires_grad
        self._leaf = True
        self.grad: Tensor | None = None
        self._name: str | None = None

    @classmethod
    def _from_storage(cls, s: Storage, requires_grad: bool) -> Tensor:
        t = object.__new__(cls)
        t._s = s
        t._rg = requires_grad
        t._leaf = not requires_grad
        t.grad = None
        t._name = None
        return t

    @classmethod
    def _from_array(cls, arr: np.ndarray, requires_grad: bool = False) -> Tensor:
        """A leaf holding `arr` (not copied)."""
        dt = _dtypes.to_dtype(arr.dtype)
        if arr.dtype != dt:
            arr = arr.astype(dt)
        t = cls._from_storage(Storage(arr, None, Aval(arr.shape, arr.dtype), False), False)
        if requires_grad:
            t.requires_grad_(True)
        return t

    # -- metadata (known without computing) -----------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self._s.aval.shape)

    def size(self, dim: int | None = None) -> Any:
        """The shape, or its length along `dim`."""
        shape = self._s.aval.shape
        if dim is None:
            return Size(shape)
        return shape[_dims(dim, len(shape))[0]]  # type: ignore[index]

    @property
    def dtype(self) -> np.dtype:
        return self._s.aval.dtype

    @property
    def ndim(self) -> int:
        return len(self._s.aval.shape)

    def dim(self) -> int:
        return len(self._s.aval.shape)

    def numel(self) -> int:
        return math.prod(self._s.aval.shape)

    nelement = numel

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def is_cuda(self) -> bool:
        return False

    def __len__(self) -> int:
        if not self._s.aval.shape:
            raise TypeError("len() of a 0-d tensor")
        return self._s.aval.shape[0]

    # -- autograd ------------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Make this leaf record gradients (or stop)."""
        if not self.is_leaf:
            raise GraphcError(
                "requires_grad can only be changed on leaf tensors; use .detach() to get a leaf",
                user_location(),
            )
        requires_grad = bool(requires_grad)
        if requires_grad and self.dtype.kind != "f":
            raise GraphcError(
                f"only floating-point tensors can require gradients, not {self.dtype}",
                user_location(),
            )
        s = self._s
        if requires_grad and not self._rg:
            if s.data is None:
                engine.realize("requires_grad_() on a computed tensor makes it a leaf")
            s.owner = weakref.ref(self)
            s.node = None  # a fresh input node, registered as this leaf's
            s.plain = None
        elif not requires_grad and self._rg and s.owner is not None and s.owner() is self:
            s.owner = None
            if s.data is not None:
                s.node = None
        self._rg = requires_grad
        self._leaf = True
        return self

    @property
    def is_leaf(self) -> bool:
        return not self._rg or self._leaf

    @property
    def grad_fn(self) -> str | None:
        return grad_fn_name(self)

    def backward(
        self, gradient: Any = None, retain_graph: Any = None, create_graph: bool = False
    ) -> None:
        """Accumulate the gradient of this tensor into the `.grad` of the leaves that require
        grad. Recorded, not computed: the next realization computes forward and backward in
        one executable. A non-scalar tensor needs `gradient` (the vector of the
        vector-Jacobian product)."""
        from graphc.torch._autograd import backward

        backward(self, gradient, create_graph)

    def retain_grad(self) -> None:
        raise GraphcError(
            "retain_grad() is not supported by graphc.torch: gradients are computed for leaves "
            "only; make the value a leaf (x = y.detach().requires_grad_()) or use "
            "torch.autograd.grad(loss, [y])",
            user_location(),
        )

    def detach(self) -> Tensor:
        """The same value without history (no gradient flows through it)."""
        t = Tensor._from_storage(self._s, False)
        return t

    def detach_(self) -> Tensor:
        self._rg, self._leaf = False, True
        return self

    @property
    def data(self) -> Tensor:
        """This tensor's value without history, sharing its storage: changing it in place
        changes this tensor (the pre-`no_grad` way of updating parameters)."""
        return Tensor._from_storage(self._s, False)

    @data.setter
    def data(self, value: Any) -> None:
        v = value if isinstance(value, Tensor) else Tensor._from_array(np.asarray(value))
        if tuple(v.shape) != tuple(self.shape) or v.dtype != self.dtype:
            self._s.aval = v._s.aval
        with no_grad():
            if v._s.data is not None:
                self._s.set_data(v._s.data)
            else:
                self._s.set_node(node_of(v, False), False)

    # -- values (these realize) -------------------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The value as a NumPy array (computing it if pending)."""
        return _pending(self, ".numpy()")

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number (computing it if pending)."""
        if self.numel() != 1:
            raise GraphcError(
                f"item() needs a tensor with one element, not shape {tuple(self.shape)}",
                user_location(),
            )
        return _pending(self, ".item()").reshape(()).item()

    def tolist(self) -> Any:
        return _pending(self, ".tolist()").tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = _pending(self, "np.asarray(tensor)")
        return a if dtype is None else a.astype(dtype)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iu":
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise GraphcError(
                "the truth value of a tensor with more than one element is ambiguous; use "
                ".any() or .all()",
                user_location(),
            )
        return bool(_pending(self, "a tensor was used as a truth value").reshape(()).item())

    def __repr__(self) -> str:
        return _format(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        # f"{loss:.4f}" formats the number, as PyTorch does for one-element tensors
        if self.numel() == 1 and spec:
            return format(self.item(), spec)
        return format(repr(self), spec)

    __hash__ = object.__hash__

    def __iter__(self) -> Iterator[Tensor]:
        if not self.shape:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __reduce__(self) -> tuple:
        return (_unpickle, (self.numpy(), self._rg))

    # -- conversion ------------------------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """`to(dtype)`, `to("cpu")`, `to(other_tensor)`; graphc.torch runs on the CPU only."""
        dtype = kwargs.get("dtype")
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif _is_device(a):
                _check_device(a)
            else:
                dtype = a
        _check_device(kwargs.get("device", "cpu"))
        return self if dtype is None else self.type(dtype)

    def cpu(self) -> Tensor:
        return self

    def cuda(self, *args: Any, **kwargs: Any) -> Tensor:
        _check_device("cuda")
        return self

    def type(self, dtype: Any = None) -> Any:
        if dtype is None:
            return f"torch.{self.dtype.name.capitalize()}Tensor"
        dt = to_dtype(dtype)
        if dt == self.dtype:
            return self
        return record(_t_cast, [self], (dt,), name=".to()")[0]

    def float(self) -> Tensor:
        return self.type(np.float32)

    def double(self) -> Tensor:
        return self.type(np.float64)

    def half(self) -> Tensor:
        return self.type(np.float16)

    def long(self) -> Tensor:
        return self.type(np.int64)

    def int(self) -> Tensor:
        return self.type(np.int32)

    def bool(self) -> Tensor:
        return self.type(np.bool_)

    def contiguous(self) -> Tensor:
        return self

    def clone(self) -> Tensor:
        """A copy (with history: gradients flow back through it)."""
        if self._s.data is not None and not self._rg:
            return Tensor._from_array(self._s.data.copy())
        return record(_t_unary, [self], (np.positive, self.dtype), name=".clone()")[0]

    # -- arithmetic ------------------------------------------------------------------------------
    __add__ = _binary("+", np.add)
    __sub__ = _binary("-", np.subtract)
    __mul__ = _binary("*", np.multiply)
    __truediv__ = _binary("/", np.true_divide, "div")
    __floordiv__ = _binary("//", _floor_divide)
    __mod__ = _binary("%", _remainder)
    __lt__ = _binary("<", np.less, "compare")
    __le__ = _binary("<=", np.less_equal, "compare")
    __gt__ = _binary(">", np.greater, "compare")
    __ge__ = _binary(">=", np.greater_equal, "compare")
    __eq__ = _binary("==", np.equal, "compare")  # type: ignore[assignment]
    __ne__ = _binary("!=", np.not_equal, "compare")  # type: ignore[assignment]
    __and__ = _binary("&", np.logical_and, "logical")
    __or__ = _binary("|", np.logical_or, "logical")
    __xor__ = _binary("^", np.logical_xor, "logical")

    def __radd__(self, o: Any) -> Tensor:
        return Tensor.__add__(self, o, True)

    def __rsub__(self, o: Any) -> Tensor:
        return Tensor.__sub__(self, o, True)

    def __rmul__(self, o: Any) -> Tensor:
        return Tensor.__mul__(self, o, True)

    def __rtruediv__(self, o: Any) -> Tensor:
        return Tensor.__truediv__(self, o, True)

    def __rfloordiv__(self, o: Any) -> Tensor:
        return Tensor.__floordiv__(self, o, True)

    def __rmod__(self, o: Any) -> Tensor:
        return Tensor.__mod__(self, o, True)

    __rand__ = __and__
    __ror__ = __or__
    __rxor__ = __xor__

    def __pow__(self, exponent: Any) -> Tensor:
        if type(exponent) in (int, float):
            # a Python exponent is static: x ** 2 becomes an exact integer power
            dt = result_type(_sig(self), exponent)
            return record(_t_unary, [self], (_WithConstant(np.power, exponent), dt), name="**")[0]
        return pow(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return pow(base, self)

    def __matmul__(self, other: Any) -> Tensor:
        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return matmul(other, self)

    def __neg__(self) -> Tensor:
        return record(_t_unary, [self], (np.negative, self.dtype), name="-")[0]

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return self.abs()

    def __invert__(self) -> Tensor:
        if self.dtype != np.bool_:
            raise GraphcError("~ is supported on boolean tensors only", user_location())
        return record(_t_unary, [self], (np.logical_not, self.dtype), name="~")[0]

    def add(self, other: Any, alpha: Any = 1) -> Tensor:
        return self + (other * alpha if alpha != 1 else other)

    def sub(self, other: Any, alpha: Any = 1) -> Tensor:
        return self - (other * alpha if alpha != 1 else other)

    def mul(self, other: Any) -> Tensor:
        return self * other

    def div(self, other: Any, rounding_mode: str | None = None) -> Tensor:
        return div(self, other, rounding_mode=rounding_mode)

    multiply, divide, subtract = mul, div, sub
    true_divide = __truediv__

    def pow(self, exponent: Any) -> Tensor:
        return self**exponent

    def matmul(self, other: Any) -> Tensor:
        return matmul(self, other)

    mm = matmul

    def eq(self, o: Any) -> Tensor:
        return self == o

    def ne(self, o: Any) -> Tensor:
        return self != o

    def lt(self, o: Any) -> Tensor:
        return self < o

    def le(self, o: Any) -> Tensor:
        return self <= o

    def gt(self, o: Any) -> Tensor:
        return self > o

    def ge(self, o: Any) -> Tensor:
        return self >= o

    # -- elementwise functions --------------------------------------------------------------------
    exp = _unary("exp", np.exp, floating=True)
    log = _unary("log", np.log, floating=True)
    sqrt = _unary("sqrt", np.sqrt, floating=True)
    rsqrt = _unary("rsqrt", gnp.rsqrt, floating=True)
    sin = _unary("sin", np.sin, floating=True)
    cos = _unary("cos", np.cos, floating=True)
    tanh = _unary("tanh", np.tanh, floating=True)
    sigmoid = _unary("sigmoid", gnp.sigmoid, floating=True)
    log1p = _unary("log1p", np.log1p, floating=True)
    expm1 = _unary("expm1", np.expm1, floating=True)
    relu = _unary("relu", gnp.relu)
    abs = _unary("abs", np.abs)
    sign = _unary("sign", np.sign)
    floor = _unary("floor", np.floor)
    ceil = _unary("ceil", np.ceil)
    round = _unary("round", np.round)

    def square(self) -> Tensor:
        return self**2

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        """Limit the values to [min, max] (either may be None)."""
        return clamp(self, min, max)

    clip = clamp

    def softmax(self, dim: int) -> Tensor:
        from graphc.torch.nn.functional import softmax

        return softmax(self, dim)

    def log_softmax(self, dim: int) -> Tensor:
        from graphc.torch.nn.functional import log_softmax

        return log_softmax(self, dim)

    def masked_fill(self, mask: Any, value: Any) -> Tensor:
        """`value` where `mask` is true, this tensor elsewhere."""
        return where(mask, value, self).type(self.dtype)

    # -- reductions ------------------------------------------------------------------------------
    def sum(self, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
        """Sum over `dim` (all dimensions when None); integers and bools sum as int64."""
        dt = to_dtype(dtype) if dtype is not None else self.dtype
        if dtype is None and dt.kind in "biu":
            dt = np.dtype(np.int64)
        axes = _dims(dim, self.dim())
        return record(_t_reduce, [self], (np.sum, axes, bool(keepdim), dt), name=".sum()")[0]

    def mean(self, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
        """Mean over `dim` (all dimensions when None); needs a floating-point tensor."""
        dt = to_dtype(dtype) if dtype is not None else self.dtype
        if dt.kind != "f":
            raise GraphcError(
                f"mean() needs a floating-point tensor (or dtype=), got {self.dtype}",
                user_location(),
            )
        axes = _dims(dim, self.dim())
        return record(_t_reduce, [self], (np.mean, axes, bool(keepdim), dt), name=".mean()")[0]

    def prod(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        axes = _dims(dim, self.dim())
        return record(
            _t_reduce, [self], (np.prod, axes, bool(keepdim), self.dtype), name=".prod()"
        )[0]

    def var(
        self,
        dim: Any = None,
        unbiased: bool | None = None,
        keepdim: bool = False,
        *,
        correction: int | None = None,
    ) -> Tensor:
        """Variance, unbiased (correction=1) by default as in PyTorch."""
        return self._var(dim, unbiased, keepdim, correction, False, ".var()")

    def std(
        self,
        dim: Any = None,
        unbiased: bool | None = None,
        keepdim: bool = False,
        *,
        correction: int | None = None,
    ) -> Tensor:
        """Standard deviation, unbiased (correction=1) by default as in PyTorch."""
        return self._var(dim, unbiased, keepdim, correction, True, ".std()")

    def _var(self, dim: Any, unbiased: Any, keepdim: bool, correction: Any, sqrt: bool, name: str):
        if isinstance(dim, bool):  # t.var(False): the old positional `unbiased`
            dim, unbiased = None, dim
        ddof = correction if correction is not None else (0 if unbiased is False else 1)
        x = self if self.dtype.kind == "f" else self.float()
        axes = _dims(dim, self.dim())
        return record(_t_var, [x], (axes, bool(keepdim), int(ddof), sqrt), name=name)[0]

    def max(self, dim: Any = None, keepdim: bool = False) -> Any:
        """The largest value; with `dim`, (values, indices) along it; with a tensor, the
        elementwise maximum."""
        return _extreme(self, dim, keepdim, np.max, np.argmax, np.maximum, ".max()")

    def min(self, dim: Any = None, keepdim: bool = False) -> Any:
        """The smallest value; with `dim`, (values, indices) along it; with a tensor, the
        elementwise minimum."""
        return _extreme(self, dim, keepdim, np.min, np.argmin, np.minimum, ".min()")

    def amax(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        axes = _dims(dim, self.dim())
        return record(_t_reduce, [self], (np.max, axes, bool(keepdim), self.dtype), name=".amax()")[
            0
        ]

    def amin(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        axes = _dims(dim, self.dim())
        return record(_t_reduce, [self], (np.min, axes, bool(keepdim), self.dtype), name=".amin()")[
            0
        ]

    def argmax(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        """Index of the largest value (of the flattened tensor when `dim` is None)."""
        axis = None if dim is None else _dims(dim, self.dim())[0]  # type: ignore[index]
        return record(_t_arg, [self], (np.argmax, axis, bool(keepdim)), name=".argmax()")[0]

    def argmin(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        """Index of the smallest value (of the flattened tensor when `dim` is None)."""
        axis = None if dim is None else _dims(dim, self.dim())[0]  # type: ignore[index]
        return record(_t_arg, [self], (np.argmin, axis, bool(keepdim)), name=".argmin()")[0]

    def all(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        axes = _dims(dim, self.dim())
        return record(
            _t_reduce, [self], (np.all, axes, bool(keepdim), np.dtype(np.bool_)), name=".all()"
        )[0]

    def any(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        axes = _dims(dim, self.dim())
        return record(
            _t_reduce, [self], (np.any, axes, bool(keepdim), np.dtype(np.bool_)), name=".any()"
        )[0]

    def norm(self, p: Any = 2, dim: Any = None, keepdim: bool = False) -> Tensor:
        if p != 2:
            return (self.abs() ** p).sum(dim, keepdim) ** (1.0 / p)
        return (self * self).sum(dim, keepdim).sqrt()

    # -- shapes ----------------------------------------------------------------------------------
    def view(self, *shape: Any) -> Tensor:
        """The same values in another shape (-1: the size that fits)."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer, tuple, list)):
            return self.type(shape[0])
        return self.reshape(*shape)

    def reshape(self, *shape: Any) -> Tensor:
        target = _shape_args(shape)
        if target == tuple(self.shape):
            return self
        return record(_t_reshape, [self], (target,), name=".reshape()")[0]

    def view_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    reshape_as = view_as

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge dimensions start_dim..end_dim into one."""
        nd = self.dim()
        if nd == 0:
            return self.reshape(1)
        s, e = _dims((start_dim, end_dim), nd)  # type: ignore[misc]
        shape = tuple(self.shape)
        return self.reshape(shape[:s] + (math.prod(shape[s : e + 1]),) + shape[e + 1 :])

    def unflatten(self, dim: int, sizes: Sequence[int]) -> Tensor:
        d = _dims(dim, self.dim())[0]  # type: ignore[index]
        shape = tuple(self.shape)
        return self.reshape(shape[:d] + tuple(sizes) + shape[d + 1 :])

    def permute(self, *dims: Any) -> Tensor:
        """Reorder the dimensions."""
        perm = _dims(_shape_args(dims), self.dim())
        return record(_t_transpose, [self], (perm,), name=".permute()")[0]

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        """Swap two dimensions."""
        a, b = _dims((dim0, dim1), self.dim())  # type: ignore[misc]
        perm = list(range(self.dim()))
        perm[a], perm[b] = perm[b], perm[a]
        return record(_t_transpose, [self], (tuple(perm),), name=".transpose()")[0]

    def t(self) -> Tensor:
        if self.dim() < 2:
            return self
        return self.transpose(0, 1)

    @property
    def T(self) -> Tensor:  # noqa: N802 (PyTorch's name)
        return record(_t_transpose, [self], (tuple(reversed(range(self.dim()))),), name=".T")[0]

    @property
    def mT(self) -> Tensor:  # noqa: N802
        return self.transpose(-2, -1)

    def unsqueeze(self, dim: int) -> Tensor:
        """A new dimension of size 1 at `dim`."""
        d = int(dim) % (self.dim() + 1)
        shape = tuple(self.shape)
        return self.reshape(shape[:d] + (1,) + shape[d:])

    def squeeze(self, dim: Any = None) -> Tensor:
        """Remove dimensions of size 1 (only `dim`, when given: a dimension of another size is
        left alone, as in PyTorch)."""
        shape = tuple(self.shape)
        if dim is None:
            return self.reshape(tuple(s for s in shape if s != 1))
        ds = set(_dims(dim, self.dim()) or ())
        return self.reshape(tuple(s for i, s in enumerate(shape) if not (i in ds and s == 1)))

    def expand(self, *sizes: Any) -> Tensor:
        """Broadcast to `sizes` (-1 keeps a dimension)."""
        sizes = _shape_args(sizes)
        shape = tuple(self.shape)
        lead = len(sizes) - len(shape)
        target = tuple(shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
        if target == shape:
            return self
        return record(_t_broadcast, [self], (target,), name=".expand()")[0]

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(other.shape)

    def repeat(self, *sizes: Any) -> Tensor:
        return record(_t_tile, [self], (_shape_args(sizes),), name=".repeat()")[0]

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        n = self.shape[dim]
        step = -(-n // chunks)
        return self.split(step, dim)

    def split(self, size: Any, dim: int = 0) -> tuple[Tensor, ...]:
        d = _dims(dim, self.dim())[0]  # type: ignore[index]
        n = self.shape[d]
        sizes = (
            [size] * (n // size) + ([n % size] if n % size else [])
            if isinstance(size, int)
            else list(size)
        )
        out, start = [], 0
        for s in sizes:
            key = (slice(None),) * d + (slice(start, start + s),)
            out.append(self[key])
            start += s
        return tuple(out)

    # -- indexing --------------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Tensor:
        structure, tensors = _index_parts(key)
        return record(_t_getitem, [self, *tensors], (structure,), name="tensor[...]")[0]

    def __setitem__(self, key: Any, value: Any) -> None:
        structure, tensors = _index_parts(key)
        # the selected positions must be known: tensor indices are realized (a split point)
        it = iter(tensors)
        structure = tuple(
            _Frozen(np.asarray(next(it).numpy(), np.int64)) if p is _TRACED else p
            for p in structure
        )
        pos = np.arange(self.numel()).reshape(tuple(self.shape))[_rebuild_key(structure, [])]
        mask = np.zeros(self.numel(), bool)
        mask[pos.reshape(-1)] = True
        source = np.zeros(self.numel(), np.int64)
        source[pos.reshape(-1)] = np.arange(pos.size)
        v = as_tensor_arg(value)
        if isinstance(v, Tensor) and v.dtype != self.dtype:
            v = v.type(self.dtype)
        if type(v) is int and self.dtype.kind == "f":
            v = float(v)
        mask_f = _Frozen(mask.reshape(tuple(self.shape)))
        if isinstance(v, (Tensor, float)):
            static = (mask_f, _Frozen(source), tuple(pos.shape))
            record_into(self, _t_setitem, [self, v], static, "tensor[...] = value")
        else:
            record_into(self, _SetitemStatic(v), [self], (mask_f,), "tensor[...] = value")

    # -- in place ---------------------------------------------------------------------------------
    def _inplace(self, fn: Callable, other: Any, name: str) -> Tensor:
        other = as_tensor_arg(other)
        dt = result_type(_sig(self), _sig(other))
        traced, layout = _layout((self, other), dt)
        return record_into(self, _t_elementwise, traced, (fn, dt, layout), name)

    def add_(self, other: Any, alpha: Any = 1) -> Tensor:
        """self += alpha * other, in place."""
        if alpha != 1:
            other = other * alpha
        return self._inplace(np.add, other, ".add_()")

    def sub_(self, other: Any, alpha: Any = 1) -> Tensor:
        if alpha != 1:
            other = other * alpha
        return self._inplace(np.subtract, other, ".sub_()")

    def mul_(self, other: Any) -> Tensor:
        return self._inplace(np.multiply, other, ".mul_()")

    def div_(self, other: Any) -> Tensor:
        return self._inplace(np.true_divide, other, ".div_()")

    def pow_(self, other: Any) -> Tensor:
        return self._inplace(np.power, other, ".pow_()")

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_

    def zero_(self) -> Tensor:
        """Set every element to 0, in place."""
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        """Set every element to `value`, in place."""
        if isinstance(value, Tensor):
            return self.copy_(value.expand(self.shape))
        s = self._s
        _check_inplace(self, ".fill_()")
        s.set_data(np.full(s.aval.shape, value, s.aval.dtype))
        return self

    def copy_(self, src: Any) -> Tensor:
        """Copy `src`'s values into this tensor (broadcast and cast to its shape and dtype)."""
        src = as_tensor_arg(src)
        return record_into(self, _t_identity, [src], (), ".copy_()")

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        return self.copy_(clamp(self, min, max))

    def relu_(self) -> Tensor:
        return self.copy_(self.relu())

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> Tensor:
        from graphc.torch._creation import generator

        _check_inplace(self, ".uniform_()")
        shape, dt = tuple(self.shape), self.dtype
        self._s.set_data(generator().uniform(a, b, shape).astype(dt))
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        from graphc.torch._creation import generator

        _check_inplace(self, ".normal_()")
        shape, dt = tuple(self.shape), self.dtype
        self._s.set_data((mean + std * generator().standard_normal(shape)).astype(dt))
        return self


def _check_inplace(t: Tensor, name: str) -> None:
    if is_grad_enabled() and t._rg and t._s.owner is not None and t._s.owner() is t:
        raise GraphcError(
            f"{name}: a leaf tensor that requires grad cannot be changed in place while "
            "gradients are recorded; do it inside `with torch.no_grad():`",
            user_location(),
        )


def _t_identity(x: Any) -> Any:
    return x


class _WithConstant:
    """`fn(x, c)` for a static Python number `c` (an exponent, which stays static so that
    `x ** 2` is an exact integer power), hashable by value."""

    __slots__ = ("fn", "c")

    def __init__(self, fn: Callable, c: Any):
        self.fn, self.c = fn, c

    def __call__(self, x: Any) -> Any:
        return self.fn(x, self.c)

    def __hash__(self) -> int:
        return hash((self.fn, type(self.c), self.c))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _WithConstant)
            and self.fn is other.fn
            and type(self.c) is type(other.c)
            and self.c == other.c
        )


class _SetitemStatic(_WithConstant):
    """`x[key] = c` for a static int or bool `c`."""

    def __init__(self, c: Any):
        super().__init__(None, c)  # type: ignore[arg-type]

    def __call__(self, x: Any, mask: Any) -> Any:  # type: ignore[override]
        return np.where(mask.value, np.asarray(self.c, x.dtype), x)


def _unpickle(arr: np.ndarray, requires_grad: bool) -> Tensor:
    return Tensor._from_array(arr, requires_grad)


def _is_device(a: Any) -> bool:
    from graphc.torch._creation import device

    return isinstance(a, (str, device))


def _check_device(d: Any) -> None:
    name = str(d).split(":")[0]
    if name != "cpu":
        raise GraphcError(
            f"graphc.torch runs on the CPU; device {str(d)!r} is not available "
            "(torch.cuda.is_available() is False)",
            user_location(),
        )


def _extreme(
    t: Tensor, dim: Any, keepdim: bool, red: Callable, arg: Callable, pair: Callable, name: str
) -> Any:
    if isinstance(dim, Tensor):  # t.max(other): the elementwise maximum
        return elementwise(name, pair, (t, dim), result_type(_sig(t), _sig(dim)))
    if dim is None:
        return record(_t_reduce, [t], (red, None, False, t.dtype), name=name)[0]
    axis = _dims(dim, t.dim())[0]  # type: ignore[index]
    values, indices = record(_t_extreme, [t], (red, arg, axis, bool(keepdim)), name=name)
    return MaxResult(values, indices)


# ---------------------------------------------------------------------------------------------
# module-level functions that methods use


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product (batched, with broadcasting), as `a @ b`."""
    a, b = as_tensor_arg(a), as_tensor_arg(b)
    dt = promote_types(a.dtype, b.dtype)
    return elementwise("@", np.matmul, (a, b), dt)


def pow(base: Any, exponent: Any) -> Tensor:  # noqa: A001 (PyTorch's name)
    """`base ** exponent` elementwise."""
    if isinstance(base, Tensor) and type(exponent) in (int, float):
        return base**exponent
    base, exponent = as_tensor_arg(base), as_tensor_arg(exponent)
    dt = result_type(_sig(base), _sig(exponent))
    return elementwise("**", np.power, (base, exponent), dt)


def div(a: Any, b: Any, *, rounding_mode: str | None = None) -> Tensor:
    """`a / b`; rounding_mode "floor" or "trunc" rounds the quotient."""
    a = as_tensor_arg(a)
    if rounding_mode is None:
        return Tensor.__truediv__(a, b) if isinstance(a, Tensor) else Tensor.__rtruediv__(b, a)
    if rounding_mode == "floor":
        return a // b
    if rounding_mode == "trunc":
        q = a / b
        out = q.sign() * (q.abs().floor())
        dt = result_type(_sig(a), _sig(as_tensor_arg(b)))
        return out.type(dt)
    raise ArgumentError(f"rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """`a` where `cond` is true, else `b` (broadcast together)."""
    cond = as_tensor_arg(cond)
    a, b = as_tensor_arg(a), as_tensor_arg(b)
    dt = result_type(_sig(a), _sig(b))
    if type(a) is int and dt.kind == "f":
        a = float(a)
    if type(b) is int and dt.kind == "f":
        b = float(b)
    return elementwise("torch.where", _where_fn, (cond, a, b), dt)


def _where_fn(c: Any, a: Any, b: Any) -> Any:
    return np.where(gnp.astype(c, np.bool_) if hasattr(c, "dtype") else c, a, b)


def clamp(x: Any, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    """Limit `x` to [min, max] (either may be None)."""
    x = as_tensor_arg(x)
    out = x
    if min is not None:
        out = elementwise(
            "clamp", np.maximum, (out, as_tensor_arg(min)), result_type(_sig(out), _sig(min))
        )
    if max is not None:
        out = elementwise(
            "clamp", np.minimum, (out, as_tensor_arg(max)), result_type(_sig(out), _sig(max))
        )
    return out


# ---------------------------------------------------------------------------------------------
# printing


def _format(t: Tensor) -> str:
    arr = t.numpy()
    suffix = []
    if arr.dtype not in (get_default_dtype(), np.dtype(np.int64), np.dtype(np.bool_)):
        suffix.append(f"dtype=torch.{arr.dtype.name}")
    if t._rg:
        if t.is_leaf:
            suffix.append("requires_grad=True")
        else:
            suffix.append(f"grad_fn=<{grad_fn_name(t)}>")
    prefix = "tensor("
    if (
        arr.dtype.kind == "f"
        and arr.size
        and np.all(np.isfinite(arr))
        and np.all(arr == np.round(arr))
    ):
        body = np.array2string(arr, separator=", ", prefix=prefix, floatmode="maxprec")
    elif arr.dtype.kind == "f":
        body = np.array2string(
            arr, separator=", ", prefix=prefix, precision=4, floatmode="fixed", suppress_small=True
        )
    else:
        body = np.array2string(arr, separator=", ", prefix=prefix)
    if suffix:
        return f"{prefix}{body}, {', '.join(suffix)})"
    return f"{prefix}{body})"
