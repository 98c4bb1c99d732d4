"""Tracing: run a user's NumPy function on tracers and record what it computes as a Graph.

A `Tracer` stands in for an array. Operators, NumPy ufuncs (`__array_ufunc__`) and NumPy functions
(`__array_function__`) on tracers create IR nodes instead of computing; each node remembers the
user's `file:line` and the module scope it was created under.

Example:
    >>> f = lambda x, W: np.tanh(x @ W)
    >>> g = graphc.trace(f, graphc.spec("f32[4,3]"), graphc.spec("f32[3,2]"))
    >>> [n.op for n in g.equations]
    ['matmul', 'tanh']
"""

from __future__ import annotations

import contextlib
import dis
import functools
import inspect
import os
import re
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from graphc import tree_util as pytree
from graphc.ir import (
    Aval,
    DTypeError,
    Graph,
    GraphcError,
    Meta,
    Node,
    as_dtype,
    make_const,
    make_input,
)
from graphc.ops import registry

# ---------------------------------------------------------------------------------------------
# errors


class TracerError(GraphcError):
    """Python tried to use a traced value as a concrete one (control flow, float(x), ...)."""


class UnsupportedError(GraphcError):
    """A NumPy function or feature that graphc does not trace."""


class UnsupportedAttributeError(UnsupportedError, AttributeError):
    """An ndarray attribute tracers do not have (an AttributeError too, so `hasattr` works)."""


class ArgumentError(GraphcError, TypeError):
    """A call with arguments the function does not take, or of a kind it cannot use (a
    TypeError too, as in NumPy)."""


class ArgumentValueError(GraphcError, ValueError):
    """A call with an argument whose value the function cannot use (a ValueError too, as in
    NumPy)."""


# ---------------------------------------------------------------------------------------------
# where in the user's code we are

_SKIP = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "passes") + os.sep,
    os.path.dirname(os.path.abspath(np.__file__)) + os.sep,
    "<__array_function__",
    "<frozen ",
    contextlib.__file__,
)


def _display_path(path: str) -> str:
    try:
        cwd = os.getcwd()
    except OSError:  # the working directory was removed
        return path
    return _display_path_from(path, cwd)


@functools.lru_cache(maxsize=1024)
def _display_path_from(path: str, cwd: str) -> str:
    # every node asks for its location: relpath's cost is paid once per file and directory
    for part in (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep):
        if part in path:  # an installed library: its import path says enough
            return path.split(part, 1)[1]
    try:
        rel = os.path.relpath(path, cwd)
    except ValueError:
        return path
    return path if rel.startswith(".." + os.sep + "..") else rel


def _library_prefixes() -> tuple[str, ...]:
    """Where installed libraries and the standard library live: code there is not the user's,
    so a library that calls NumPy on a tracer is reported at the user's call into it."""
    paths = sysconfig.get_paths()
    out = {
        os.path.abspath(paths[k]) + os.sep
        for k in ("stdlib", "platstdlib", "purelib", "platlib")
        if paths.get(k)
    }
    return tuple(sorted(out, key=len, reverse=True))


_LIBRARY = _library_prefixes()
_LIBRARY_PARTS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def _is_library(filename: str) -> bool:
    return filename.startswith(_LIBRARY) or any(p in filename for p in _LIBRARY_PARTS)


def _frames(skip: int = 1) -> Iterator[Any]:
    f = sys._getframe(skip + 1)
    while f is not None:
        yield f
        f = f.f_back


_GRAPHC, _LIBRARY_CODE, _USER_CODE = 0, 1, 2
# file name -> whose code it is; every traced node asks, from a handful of files
_FILE_KIND: dict[str, int] = {}


def _file_kind(filename: str) -> int:
    kind = _FILE_KIND.get(filename)
    if kind is None:
        if filename.startswith(_SKIP):
            kind = _GRAPHC
        else:
            kind = _LIBRARY_CODE if _is_library(filename) else _USER_CODE
        if len(_FILE_KIND) > 4096:  # code compiled from strings may name many "files"
            _FILE_KIND.clear()
        _FILE_KIND[filename] = kind
    return kind


def user_frame() -> Any:
    """The innermost frame of the user's code: outside graphc, NumPy and installed libraries
    (scipy, the standard library, ...). When every frame is a library's, the innermost one
    outside graphc and NumPy."""
    first = None
    f = sys._getframe(1)
    while f is not None:
        kind = _file_kind(f.f_code.co_filename)
        if kind == _USER_CODE:
            return f
        if kind == _LIBRARY_CODE and first is None:
            first = f
        f = f.f_back
    return first


def frame_location(f: Any) -> str | None:
    return None if f is None else f"{_display_path(f.f_code.co_filename)}:{f.f_lineno}"


def user_location() -> str | None:
    """`file:line` of the user's code that is running (see `user_frame`)."""
    return frame_location(user_frame())


def library_location() -> str | None:
    """`file:line` of the innermost library frame (outside graphc and NumPy) between here and
    the user's code, or None when the user's code called graphc or NumPy directly."""
    for f in _frames(1):
        fn = f.f_code.co_filename
        if fn.startswith(_SKIP):
            continue
        return frame_location(f) if _is_library(fn) else None
    return None


_STORE_SUBSCR = dis.opmap["STORE_SUBSCR"]


def _storing_item() -> bool:
    """Is the innermost frame outside graphc executing `a[k] = v`? (NumPy's item assignment
    asks the traced value for a concrete number or array, which is where we are then.)"""
    for f in _frames(1):
        if f.f_code.co_filename.startswith(_SKIP):
            continue
        code = f.f_code.co_code
        return 0 <= f.f_lasti < len(code) and code[f.f_lasti] == _STORE_SUBSCR
    return False


# ---------------------------------------------------------------------------------------------
# the user-facing call being traced, so errors name it (np.stack, x.max()) and its line


def _calls() -> list[str]:
    if not hasattr(_state, "calls"):
        _state.calls = []
    return _state.calls


_OP_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*: ")


def located(e: GraphcError, call: str | None) -> GraphcError:
    """`e` naming the user's call and line: errors raised by the helpers and ops a NumPy
    function is built from (`reduction: ...`, `expand_dims: ...`) are reworded to name the
    function the user called."""
    msg = e.message
    if call is not None:
        m = _OP_PREFIX.match(msg)
        if m and not msg.startswith(call):
            msg = f"{call}: {msg[m.end() :]}"
    loc = e.location or user_location()
    if msg == e.message and loc == e.location:
        return e
    new = type(e).__new__(type(e))
    new.__dict__.update(e.__dict__)
    for cls in type(e).__mro__:  # NumPy's AxisError keeps axis and ndim in slots
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(e, slot):
                setattr(new, slot, getattr(e, slot))
    GraphcError.__init__(new, msg, loc)
    return new


def _signature_problem(fn: Callable, args: tuple, kwargs: dict) -> str | None:
    """Why `fn(*args, **kwargs)` does not fit fn's signature, or None when it does."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        return re.sub(r"^[^(]*\(\) ", "", str(e))
    except ValueError:
        return None
    return None


def api_call(call: str, fn: Callable, args: tuple, kwargs: dict) -> Any:
    """Run the graphc implementation `fn` of the user-facing `call` (`np.stack`, `x.max()`):
    errors raised inside name the call and the user's line; arguments the call does not take
    are reported as such instead of as an internal function's TypeError."""
    calls = _calls()
    outer = not calls
    calls.append(call)
    try:
        return fn(*args, **kwargs)
    except GraphcError as e:
        raise located(e, call if outer else None).with_traceback(None) from None
    except TypeError as e:
        # an argument the call does not take; otherwise one of a kind it cannot use (a string
        # for an axis) that failed inside graphc
        problem = _signature_problem(fn, args, kwargs) or f"invalid argument: {e}"
        raise ArgumentError(f"{call}: {problem}", user_location()).with_traceback(None) from e
    except ValueError as e:
        raise ArgumentValueError(f"{call}: invalid argument: {e}", user_location()).with_traceback(
            None
        ) from e
    finally:
        calls.pop()


_state = threading.local()


def _scopes() -> list[str]:
    if not hasattr(_state, "scopes"):
        _state.scopes = []
    return _state.scopes


@contextlib.contextmanager
def scope(name: str) -> Iterator[None]:
    """Record nodes created inside as belonging to module scope `name` (nested scopes join
    with dots, e.g. `model.layers.0`). Layers use this; users may too.

    Example:
        >>> with graphc.scope("encoder"):
        ...     y = np.tanh(x)
    """
    s = _scopes()
    s.append(str(name))
    try:
        yield
    finally:
        s.pop()


def current_scope() -> str | None:
    s = _scopes()
    return ".".join(s) if s else None


class meta_override:  # noqa: N801 (used as a function: `with meta_override(meta):`)
    """Give every node created inside this metadata (passes use it so that derived nodes point
    at the user code they come from, rather than at the pass). A class rather than a generator
    context manager: autodiff enters one per node.

    Example:
        >>> with meta_override(Meta("model.py:3")):
        ...     y = np.tanh(x)
    """

    __slots__ = ("meta", "prev")

    def __init__(self, meta: Meta | None):
        self.meta = meta

    def __enter__(self) -> None:
        self.prev = getattr(_state, "override", None)
        _state.override = self.meta

    def __exit__(self, *exc: object) -> None:
        _state.override = self.prev


def _meta() -> Meta:
    o = getattr(_state, "override", None)
    if o is not None:
        return o
    return Meta(user_location(), current_scope())


def trace_meta() -> Meta:
    """The metadata a node recorded now gets: the override in force (`meta_override`), else
    the user's `file:line` and the current module scope."""
    return _meta()


# ---------------------------------------------------------------------------------------------
# input specifications


class Spec:
    """A shape and dtype standing in for an example argument: `spec("f32[64,784]")`.

    Example:
        >>> graphc.spec("f32[64,784]").shape
        (64, 784)
    """

    __slots__ = ("aval",)

    def __init__(self, aval: Aval):
        self.aval = aval

    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: self.aval.ndim)

    def __repr__(self) -> str:
        return f"spec({str(self.aval)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and other.aval == self.aval

    def __hash__(self) -> int:
        return hash(self.aval)


def spec(text_or_shape: str | tuple[int, ...], dtype: Any = np.float32) -> Spec:
    """A shape/dtype spec: `spec("f32[64,784]")` or `spec((64, 784), np.float32)`."""
    if isinstance(text_or_shape, str):
        return Spec(Aval.parse(text_or_shape))
    return Spec(Aval(tuple(text_or_shape), as_dtype(dtype)))


# ---------------------------------------------------------------------------------------------
# tracers

# NumPy functions that tracers handle: filled in by graphc.numpy
HANDLED_FUNCTIONS: dict[Callable, Callable] = {}
HANDLED_UFUNCS: dict[np.ufunc, Callable] = {}
# ufunc methods (np.add.reduce, ...): handler(operand, **NumPy's keyword arguments)
HANDLED_UFUNC_METHODS: dict[tuple[np.ufunc, str], Callable] = {}
# Tracer methods that no NumPy function reaches, looked up when called: "getitem" (x[key]) and
# "astype" (ndarray.astype's signature). Filled in by graphc.numpy, as the tables above are.
HANDLED_METHODS: dict[str, Callable] = {}


def _method_handler(name: str) -> Callable:
    try:
        return HANDLED_METHODS[name]
    except KeyError:
        raise UnsupportedError(
            f"{name} on a traced array needs graphc.numpy, which fills the tracer's tables "
            "(import graphc)",
            user_location(),
        ) from None


def _concrete_error(what: str, hint: str) -> TracerError:
    if _storing_item():
        return TracerError(
            "assigning a traced value into a NumPy array (out[i] = ...) is not supported: "
            "the array cannot hold a value that is only known when the function runs; "
            "build the result from traced values instead (np.stack([...]), "
            "np.concatenate, np.where)",
            user_location(),
        )
    lib = library_location()
    if lib is not None:
        return TracerError(
            f"{what} of a traced value is not known while tracing; it was asked for at {lib}, "
            "inside a library that converts its arguments to NumPy arrays, called from "
            "your code here; use graphc.numpy's functions (or plain np.* calls) on traced "
            "values instead",
            user_location(),
        )
    return TracerError(
        f"{what} of a traced value is not known while tracing; {hint}", user_location()
    )


_CONTROL_HINT = (
    "Python control flow cannot depend on array values. Use np.where(cond, a, b) "
    "to choose between values, or pass the value as a static Python number"
)


# ---------------------------------------------------------------------------------------------
# Tracer's operators and ndarray methods go through NumPy's own protocols: `x + y` is
# np.add(x, y), which reaches Tracer.__array_ufunc__ and the handler graphc.numpy registered;
# `x.sum()` is np.sum(x), which reaches __array_function__. Nothing is set on the class from
# outside this module.


def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = name
    fn.__qualname__ = f"Tracer.{name}"
    return fn


def _is_weak_operand(x: Any) -> bool:
    return (isinstance(x, Tracer) and x.weak) or type(x) in (int, float)


def _opts_out(x: Any) -> bool:
    """Whether `x` refuses NumPy's ufuncs (`__array_ufunc__ = None`): Python then asks its
    reflected operator, as it would for an ndarray."""
    return getattr(type(x), "__array_ufunc__", _opts_out) is None


def _fast_path(ufunc: np.ufunc) -> Callable[[tuple], Any] | None:
    """The handler's shortcut, `fast(operands) -> Tracer or None` (None: take the handler):
    an attribute of the handler in HANDLED_UFUNCS, so replacing the handler replaces it."""
    return getattr(HANDLED_UFUNCS.get(ufunc), "fast", None)


def _arithmetic(ufunc: np.ufunc, name: str, reflected: bool = False) -> Callable:
    """A binary operator that keeps Python's arithmetic on Python floats weak: a traced Python
    float times a Python number is still a traced Python float (NEP 50)."""

    def op(self: Tracer, other: Any) -> Any:
        out = None
        fast = _fast_path(ufunc)
        if fast is not None:  # NumPy's dispatch would only bring the operands back here
            out = fast((other, self) if reflected else (self, other))
        if out is None:
            if _opts_out(other):
                return NotImplemented
            out = ufunc(other, self) if reflected else ufunc(self, other)
        if self.weak and _is_weak_operand(other) and isinstance(out, Tracer):
            out.weak = True
        return out

    return _named(op, name)


def _binary(ufunc: np.ufunc, name: str, reflected: bool = False) -> Callable:
    def op(self: Tracer, other: Any) -> Any:
        fast = _fast_path(ufunc)
        if fast is not None:
            out = fast((other, self) if reflected else (self, other))
            if out is not None:
                return out
        if _opts_out(other):
            return NotImplemented
        return ufunc(other, self) if reflected else ufunc(self, other)

    return _named(op, name)


def _is_boolean(x: Any) -> bool:
    if isinstance(x, Tracer):
        return not x.weak and x.dtype == np.bool_
    if isinstance(x, (bool, np.bool_)):
        return True
    if isinstance(x, (int, float, complex, np.generic)):
        return False
    return np.asarray(x).dtype == np.bool_


def _logical(ufunc: np.ufunc, symbol: str, name: str, reflected: bool = False) -> Callable:
    """`&`, `|`, `^` on booleans are NumPy's logical ufuncs; on integers they would be bitwise
    operations, which graphc's ops do not have."""

    def op(self: Tracer, other: Any) -> Any:
        if _opts_out(other):
            return NotImplemented
        if _is_boolean(self) and _is_boolean(other):
            return ufunc(other, self) if reflected else ufunc(self, other)
        raise UnsupportedError(
            f"the {symbol} operator is only supported on boolean arrays "
            "(bitwise integer operations are not)",
            user_location(),
        )

    return _named(op, name)


def _refused(symbol: str, name: str) -> Callable:
    def op(self: Tracer, *args: Any) -> Any:
        raise UnsupportedError(
            f"the {symbol} operator is not supported on traced arrays", user_location()
        )

    return _named(op, name)


def _ndarray_method(name: str, fn: Callable) -> Callable:
    """ndarray's method `name` as `fn(self, ...)`, run as the user's call `.name()`: errors name
    it and the user's line, and arguments ndarray's method does not take are reported as such."""
    call = f".{name}()"

    def method(self: Tracer, *args: Any, **kwargs: Any) -> Any:
        return api_call(call, fn, (self, *args), kwargs)

    method.__doc__ = f"Like numpy.ndarray.{name}, on a traced array."
    return _named(method, name)


def _ndarray_property(name: str, fn: Callable) -> property:
    call = f".{name}"
    return property(
        lambda self: api_call(call, fn, (self,), {}),
        doc=f"Like numpy.ndarray.{name}, on a traced array.",
    )


def _table_method(name: str, key: str) -> Callable:
    """A method with no NumPy function to go through: graphc.numpy's handler in
    HANDLED_METHODS, looked up when it is called."""
    call = f".{name}()"

    def method(self: Tracer, *args: Any, **kwargs: Any) -> Any:
        return api_call(call, _method_handler(key), (self, *args), kwargs)

    method.__doc__ = f"Like numpy.ndarray.{name}, on a traced array."
    return _named(method, name)


# ndarray's methods whose signature differs from their NumPy function's: ndarray's signature, so
# that api_call reports an argument the method does not take as such


def _reshape(a: Any, *shape: Any, order: str = "C", copy: Any = None) -> Any:
    if not shape:
        raise ArgumentError("reshape needs a shape", user_location())
    return np.reshape(a, shape[0] if len(shape) == 1 else shape, order)


def _transpose(a: Any, *axes: Any) -> Any:
    if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], (int, np.integer))):
        axes = axes[0]
    return np.transpose(a, axes or None)


def _clip(a: Any, min: Any = None, max: Any = None, out: Any = None) -> Any:  # noqa: A002
    if out is not None:
        raise UnsupportedError("np.clip: out= is not supported", user_location())
    return np.clip(a, min, max)


def _copy(a: Any, order: Any = "C") -> Any:
    return np.copy(a, order=order)


def _ravel(a: Any, order: Any = "C") -> Any:
    return np.ravel(a, order)


def _concrete(name: str) -> Callable:
    def fn(a: Any, *args: Any, **kwargs: Any) -> Any:
        raise TracerError(
            f".{name}() of a traced value is not known while tracing; return the array and "
            "convert it outside the traced function",
            user_location(),
        )

    return fn


def _view(a: Any, *args: Any, **kwargs: Any) -> Any:
    if args or kwargs:
        raise UnsupportedError(
            "ndarray.view(dtype) reinterprets the bytes, which graphc does not trace; "
            "use astype to convert values",
            user_location(),
        )
    return a


# ndarray attributes tracers do not have: each raises an error that says why
_IN_PLACE = ("fill", "sort", "resize", "put", "itemset", "partition", "setfield", "setflags")
_HINTS = {
    "sort": "use np.sort(x)",
    "fill": "use np.full_like(x, value)",
    "nonzero": "its result's shape depends on the values; use np.where(cond, x, y)",
    "compress": "its result's shape depends on the values; use np.where(cond, x, 0)",
    "tofile": "return the array and save it outside the traced function",
    "dump": "return the array and save it outside the traced function",
    "dumps": "return the array and save it outside the traced function",
}


class Tracer:
    """A traced array. Use it like a NumPy array; shape, ndim and dtype are concrete.

    Its operators are NumPy's ufuncs and its methods NumPy's functions (`x + 1` is
    `np.add(x, 1)`, `x.sum(0)` is `np.sum(x, 0)`), which reach graphc.numpy's handlers through
    `__array_ufunc__` and `__array_function__` and record nodes.

    Example:
        >>> g = graphc.trace(lambda x: (x * 2.0).sum(axis=0), graphc.spec("f32[3,4]"))
        >>> [n.op for n in g.equations]
        ['mul', 'reduce_sum']
    """

    __slots__ = ("node", "weak")
    __array_priority__ = 1000
    __hash__ = None  # type: ignore[assignment]  # like ndarray: unhashable

    def __init__(self, node: Node, weak: bool = False):
        self.node = node
        # a traced Python float: promotes like one (NEP 50), so x_f32 * s stays float32
        self.weak = weak

    # -- metadata (concrete) ------------------------------------------------------------------
    @property
    def aval(self) -> Aval:
        return self.node.aval  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.aval.shape  # type: ignore[union-attr]

    @property
    def dtype(self) -> np.dtype:
        return self.node.aval.dtype  # type: ignore[union-attr]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        if not self.shape:
            raise TracerError("len() of a 0-d traced value", user_location())
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TracerError("iteration over a 0-d traced value", user_location())
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self) -> str:
        return f"Tracer<{self.aval} = {self.node.op}>"

    # -- no concrete values --------------------------------------------------------------------
    def __bool__(self) -> bool:
        raise _concrete_error("the truth value", _CONTROL_HINT)

    def __float__(self) -> float:
        raise _concrete_error(
            "float()",
            "keep computing with arrays, or return the value and "
            "convert it outside the traced function",
        )

    def __int__(self) -> int:
        raise _concrete_error(
            "int()",
            "sizes and indices that steer the computation must be Python ints, not traced values",
        )

    __index__ = __int__

    def __complex__(self) -> complex:
        raise _concrete_error("complex()", "complex numbers are not supported")

    def __array__(self, dtype=None, copy=None):
        raise _concrete_error(
            "the array value",
            "np.asarray()/np.array() on a traced value "
            "cannot run while tracing; use graphc.numpy functions instead",
        )

    def __setitem__(self, key, value):
        raise TracerError(
            "in-place assignment to a traced array is not supported; build a new "
            "array instead (np.where, np.concatenate, or x + np.pad(...))",
            user_location(),
        )

    # -- operators: NumPy's ufuncs --------------------------------------------------------------
    __add__ = _arithmetic(np.add, "__add__")
    __radd__ = _arithmetic(np.add, "__radd__", reflected=True)
    __sub__ = _arithmetic(np.subtract, "__sub__")
    __rsub__ = _arithmetic(np.subtract, "__rsub__", reflected=True)
    __mul__ = _arithmetic(np.multiply, "__mul__")
    __rmul__ = _arithmetic(np.multiply, "__rmul__", reflected=True)
    __truediv__ = _arithmetic(np.true_divide, "__truediv__")
    __rtruediv__ = _arithmetic(np.true_divide, "__rtruediv__", reflected=True)
    __pow__ = _arithmetic(np.power, "__pow__")
    __rpow__ = _arithmetic(np.power, "__rpow__", reflected=True)
    # float // and % (integer operands get remainder's clear "cast to float first" error)
    __floordiv__ = _arithmetic(np.floor_divide, "__floordiv__")
    __rfloordiv__ = _arithmetic(np.floor_divide, "__rfloordiv__", reflected=True)
    __mod__ = _arithmetic(np.remainder, "__mod__")
    __rmod__ = _arithmetic(np.remainder, "__rmod__", reflected=True)
    __matmul__ = _binary(np.matmul, "__matmul__")
    __rmatmul__ = _binary(np.matmul, "__rmatmul__", reflected=True)
    __lt__ = _binary(np.less, "__lt__")
    __le__ = _binary(np.less_equal, "__le__")
    __gt__ = _binary(np.greater, "__gt__")
    __ge__ = _binary(np.greater_equal, "__ge__")
    __eq__ = _binary(np.equal, "__eq__")  # type: ignore[assignment]
    __ne__ = _binary(np.not_equal, "__ne__")  # type: ignore[assignment]
    __and__ = _logical(np.logical_and, "&", "__and__")
    __rand__ = _logical(np.logical_and, "&", "__rand__", reflected=True)
    __or__ = _logical(np.logical_or, "|", "__or__")
    __ror__ = _logical(np.logical_or, "|", "__ror__", reflected=True)
    __xor__ = _logical(np.logical_xor, "^", "__xor__")
    __rxor__ = _logical(np.logical_xor, "^", "__rxor__", reflected=True)
    __lshift__ = _refused("<<", "__lshift__")
    __rlshift__ = _refused("<<", "__rlshift__")
    __rshift__ = _refused(">>", "__rshift__")
    __rrshift__ = _refused(">>", "__rrshift__")
    __divmod__ = _refused("divmod", "__divmod__")
    __rdivmod__ = _refused("divmod", "__rdivmod__")

    def __neg__(self) -> Any:
        out = np.negative(self)
        if self.weak and isinstance(out, Tracer):
            out.weak = True
        return out

    def __pos__(self) -> Tracer:
        return self

    def __abs__(self) -> Any:
        return np.absolute(self)

    def __invert__(self) -> Any:
        if _is_boolean(self):
            return np.logical_not(self)
        raise UnsupportedError(
            "the ~ operator is only supported on boolean arrays", user_location()
        )

    def __getitem__(self, key: Any) -> Any:
        return _method_handler("getitem")(self, key)

    # -- ndarray's methods and properties: NumPy's functions --------------------------------------
    reshape = _ndarray_method("reshape", _reshape)
    transpose = _ndarray_method("transpose", _transpose)
    astype = _table_method("astype", "astype")
    sum = _ndarray_method("sum", np.sum)
    prod = _ndarray_method("prod", np.prod)
    mean = _ndarray_method("mean", np.mean)
    var = _ndarray_method("var", np.var)
    std = _ndarray_method("std", np.std)
    max = _ndarray_method("max", np.max)
    min = _ndarray_method("min", np.min)
    any = _ndarray_method("any", np.any)
    all = _ndarray_method("all", np.all)
    argmax = _ndarray_method("argmax", np.argmax)
    argmin = _ndarray_method("argmin", np.argmin)
    squeeze = _ndarray_method("squeeze", np.squeeze)
    ravel = _ndarray_method("ravel", _ravel)
    flatten = _ndarray_method("flatten", _ravel)
    dot = _ndarray_method("dot", np.dot)
    swapaxes = _ndarray_method("swapaxes", np.swapaxes)
    clip = _ndarray_method("clip", _clip)
    round = _ndarray_method("round", np.round)
    copy = _ndarray_method("copy", _copy)
    take = _ndarray_method("take", np.take)
    trace = _ndarray_method("trace", np.trace)
    diagonal = _ndarray_method("diagonal", np.diagonal)
    repeat = _ndarray_method("repeat", np.repeat)
    cumsum = _ndarray_method("cumsum", np.cumsum)
    cumprod = _ndarray_method("cumprod", np.cumprod)
    argsort = _ndarray_method("argsort", np.argsort)
    conj = _ndarray_method("conj", np.conjugate)
    conjugate = _ndarray_method("conjugate", np.conjugate)
    item = _ndarray_method("item", _concrete("item"))
    tolist = _ndarray_method("tolist", _concrete("tolist"))
    tobytes = _ndarray_method("tobytes", _concrete("tobytes"))
    view = _ndarray_method("view", _view)

    T = _ndarray_property("T", np.transpose)
    mT = _ndarray_property("mT", lambda a: np.swapaxes(a, -1, -2))  # noqa: N815 (ndarray's name)
    real = _ndarray_property("real", np.real)
    imag = _ndarray_property("imag", np.imag)
    flat = _ndarray_property("flat", np.ravel)  # indexing and iterating it is what .flat offers
    nbytes = _ndarray_property("nbytes", lambda a: a.size * a.dtype.itemsize)
    itemsize = _ndarray_property("itemsize", lambda a: a.dtype.itemsize)

    def __getattr__(self, name: str) -> Any:
        # only reached for names the class lacks: say why an ndarray attribute is missing
        if name.startswith("_") or not hasattr(np.ndarray, name):
            raise AttributeError(f"'Tracer' object has no attribute {name!r}")
        if name in _IN_PLACE:
            why = "changes the array in place, which graphc does not trace; build a new array"
        else:
            why = "is not supported on traced arrays"
        hint = _HINTS.get(name)
        raise UnsupportedAttributeError(
            f"ndarray.{name} {why}{'; ' + hint if hint else ''}", user_location()
        )

    # a traced value is immutable: copies are the value itself (a deep copy of its node would be
    # a node of no graph)
    def detach(self) -> Any:
        """This value with derivative zero (PyTorch's `tensor.detach()`; `graphc.detach`)."""
        return bind("stop_gradient", self)

    def __copy__(self) -> Tracer:
        return self

    def __deepcopy__(self, memo: Any = None) -> Tracer:
        return self

    # -- protocols: graphc.ops.bind, NumPy's ufuncs and functions ----------------------------------
    def __graphc_bind__(self, op: str, args: tuple, attrs: dict[str, Any]) -> Tracer:
        """`graphc.ops.bind(op, *args, **attrs)` with a traced operand: a new node."""
        return _bind_traced(op, args, attrs)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            handler = HANDLED_UFUNC_METHODS.get((ufunc, method))
            if handler is not None:
                return api_call(f"np.{ufunc.__name__}.{method}", handler, inputs, kwargs)
            raise UnsupportedError(
                f"numpy.{ufunc.__name__}.{method} is not supported by graphc", user_location()
            )
        if not kwargs:
            fast = _fast_path(ufunc)
            if fast is not None:
                out = fast(inputs)
                if out is not None:
                    return out
        if kwargs.get("out") is not None:
            raise UnsupportedError(
                f"numpy.{ufunc.__name__}(..., out=...) writes in place, "
                "which graphc does not trace",
                user_location(),
            )
        handler = HANDLED_UFUNCS.get(ufunc)
        if handler is None:
            raise UnsupportedError(
                f"numpy.{ufunc.__name__} is not supported by graphc", user_location()
            )
        kwargs.pop("out", None)
        dtype = kwargs.pop("dtype", None)
        if kwargs:
            raise UnsupportedError(
                f"numpy.{ufunc.__name__}: keyword arguments {sorted(kwargs)} are not supported",
                user_location(),
            )
        out = api_call(f"np.{ufunc.__name__}", handler, inputs, {})
        return out.astype(dtype) if dtype is not None else out

    def __array_function__(self, func, types, args, kwargs):
        handler = HANDLED_FUNCTIONS.get(func)
        if handler is None:
            mod = getattr(func, "__module__", "numpy") or "numpy"
            if mod.startswith("numpy") and ("._" in mod or mod.startswith("numpy._")):
                mod = "numpy"  # private implementation modules: users know np.<name>
            raise UnsupportedError(
                f"{mod}.{func.__name__} is not supported by graphc", user_location()
            )
        return api_call(_public_name(func), handler, args, kwargs)


def _public_name(func: Callable) -> str:
    """How the user spells a NumPy function: np.sum, np.linalg.norm."""
    mod = getattr(func, "__module__", "numpy") or "numpy"
    if mod.startswith("numpy.linalg"):
        return f"np.linalg.{func.__name__}"
    if mod == "numpy" or mod.startswith("numpy._") or "._" in mod:
        return f"np.{func.__name__}"
    return f"{mod}.{func.__name__}"


# ---------------------------------------------------------------------------------------------
# bind: the single place where traced values are created


def is_traced(x: Any) -> bool:
    return isinstance(x, Tracer)


def to_node(x: Any, dtype: Any = None, meta: Meta | None = None) -> Node:
    """The node for a tracer, or a constant node for an array-like (with `meta`, or the
    current metadata)."""
    if isinstance(x, Tracer):
        return x.node
    arr = np.asarray(x, dtype=dtype)
    if arr.dtype == object:
        raise DTypeError(f"cannot use {type(x).__name__} {x!r} as an array", user_location())
    return make_const(arr, meta=_meta() if meta is None else meta)


def bind(op: str, *args: Any, **attrs: Any) -> Any:
    """Apply a registered op. With any traced operand, record a node and return a Tracer;
    with only concrete operands, run the op's NumPy implementation at once (`graphc.ops.bind`).

    Example:
        >>> bind("tanh", np.zeros(2))
        array([0., 0.])
    """
    for a in args:
        if isinstance(a, Tracer):
            return _bind_traced(op, args, attrs)
    return registry.bind(op, *args, **attrs)


def _bind_traced(op: str, args: tuple, attrs: dict[str, Any]) -> Tracer:
    registry.get(op)  # an unknown op is reported as such, before its operands are converted
    # one walk of the stack for the node and its constant operands: they share the user's line
    meta = _meta()
    nodes = [a.node if isinstance(a, Tracer) else to_node(a, meta=meta) for a in args]
    try:
        node = registry.apply(op, nodes, attrs, meta)
    except GraphcError as e:
        if e.location is None:
            raise type(e)(e.message, meta.loc) from None
        raise
    return Tracer(node)


# ---------------------------------------------------------------------------------------------
# trace


def _is_traceable_leaf(x: Any) -> bool:
    """Leaves that become graph inputs: arrays, NumPy scalars, Python floats, specs.
    Python ints/bools, strings, callables and None stay static (they steer the trace)."""
    if isinstance(x, (np.ndarray, np.generic, Spec, Tracer)):
        return True
    return isinstance(x, float)


def is_weak(x: Any) -> bool:
    """Whether a traced leaf promotes like a Python scalar (NEP 50): Python floats, and tracers
    standing for one. NumPy scalars and 0-d arrays are strong."""
    return type(x) is float or (isinstance(x, Tracer) and x.weak)


# ndarray subclasses whose operators mean something else than an array's: tracing them as
# plain arrays would compute another function than NumPy does on them
UNSUPPORTED_SUBCLASSES = (np.ma.MaskedArray, np.matrix)


def unsupported_subclass_message(x: Any) -> str:
    what = "masked array" if isinstance(x, np.ma.MaskedArray) else "np.matrix"
    fix = "np.ma.filled(x, value) or x.data" if what == "masked array" else "np.asarray(x)"
    return (
        f"a {what} is not supported as an argument: graphc computes on plain arrays and "
        f"would ignore what the {what} changes; pass {fix}"
    )


def leaf_aval(x: Any) -> Aval:
    if isinstance(x, Spec):
        return x.aval
    if isinstance(x, Tracer):
        return x.aval
    if isinstance(x, UNSUPPORTED_SUBCLASSES):
        raise DTypeError(unsupported_subclass_message(x), user_location())
    arr = np.asarray(x)
    dt = arr.dtype
    if dt.byteorder not in "=|":  # another byte order holds the same values: the compiled
        dt = dt.newbyteorder("=")  # input is native and the argument check converts to it
    try:
        return Aval(arr.shape, as_dtype(dt))
    except DTypeError as e:
        raise DTypeError(
            f"an argument of dtype {arr.dtype} is not supported: {e.message}", user_location()
        ) from None


class InTree:
    """How a call's (args, kwargs) map onto a graph's flat inputs: structure, which leaves are
    traced, and the static leaves' values. Hashable, so it can key caches."""

    __slots__ = ("treedef", "traced", "static", "_key")

    def __init__(self, treedef: pytree.TreeDef, traced: tuple[bool, ...], static: tuple):
        self.treedef = treedef
        self.traced = traced
        self.static = static
        try:
            self._key = hash((treedef, traced, static))
        except TypeError:
            self._key = hash((treedef, traced, tuple(id(s) for s in static)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InTree):
            return False
        if (self.treedef, self.traced) != (other.treedef, other.traced):
            return False
        return all(
            a is b or _static_eq(a, b) for a, b in zip(self.static, other.static, strict=True)
        )

    def __hash__(self) -> int:
        return self._key

    def rebuild(self, traced_values: list) -> Any:
        it_t, it_s = iter(traced_values), iter(self.static)
        leaves = [next(it_t) if t else next(it_s) for t in self.traced]
        return pytree.unflatten(self.treedef, leaves)


def _static_eq(a: Any, b: Any) -> bool:
    try:
        return bool(type(a) is type(b) and a == b)
    except Exception:
        return False


def split_args(tree: Any) -> tuple[list, InTree]:
    """Flatten call arguments into traced leaves and an InTree describing the rest."""
    leaves, td = pytree.flatten(tree)
    traced = tuple(_is_traceable_leaf(x) for x in leaves)
    return (
        [x for x, t in zip(leaves, traced, strict=True) if t],
        InTree(td, traced, tuple(x for x, t in zip(leaves, traced, strict=True) if not t)),
    )


def _leaf_names(tree: Any, fn: Callable | None = None) -> list[str]:
    """Readable paths for the leaves of (args, kwargs), e.g. params['W1'] or model.layers[0].W."""
    args, kwargs = tree
    params = _positional_names(fn, len(args))
    out: list[str] = []
    for i, a in enumerate(args):
        out += pytree.leaf_paths(pytree.flatten(a)[1], params[i])
    for k, v in kwargs.items():
        out += pytree.leaf_paths(pytree.flatten(v)[1], k)
    return out


def _positional_names(fn: Callable | None, n: int) -> list[str]:
    """The function's own names for its first n positional arguments (`arg{i}` where it has
    none: *args, builtins), so inputs read `W1`, `x` in pictures and JSON."""
    names = [f"arg{i}" for i in range(n)]
    try:
        sig = inspect.signature(fn) if fn is not None else None
    except (TypeError, ValueError):
        return names
    if sig is None:
        return names
    k = 0
    for p in sig.parameters.values():
        if k >= n:
            break
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names[k] = p.name
            k += 1
        elif p.kind is p.VAR_POSITIONAL:
            for j in range(k, n):
                names[j] = f"{p.name}[{j - k}]"
            break
    return names


def trace_flat(fn: Callable, args: tuple, kwargs: dict, *, name: str | None = None) -> Graph:
    """Trace `fn(*args, **kwargs)` into a Graph whose inputs are the traceable leaves."""
    leaves, in_tree = split_args((args, kwargs))
    names = [n for n, t in zip(_leaf_names((args, kwargs), fn), in_tree.traced, strict=True) if t]
    inputs = [make_input(leaf_aval(x), nm) for x, nm in zip(leaves, names, strict=True)]
    call_args, call_kwargs = in_tree.rebuild(
        [Tracer(n, weak=is_weak(x)) for n, x in zip(inputs, leaves, strict=True)]
    )
    try:
        out = fn(*call_args, **call_kwargs)
    except GraphcError:
        raise
    except (TypeError, ValueError) as e:
        # NumPy rewraps what a tracer raised when asked for a number (`out[i] = x` raises
        # "setting an array element with a sequence"): the tracer's error says what happened
        cause = e.__cause__
        if isinstance(cause, GraphcError):
            raise cause.with_traceback(None) from None
        raise
    out_leaves, out_tree = pytree.flatten(out)
    outputs = []
    out_mask: list = []  # True: the next graph output; StaticLeaf: a value passed through
    for leaf in out_leaves:
        if isinstance(leaf, Tracer):
            outputs.append(leaf.node)
            out_mask.append(True)
        elif _is_traceable_leaf(leaf):
            outputs.append(to_node(leaf))  # an array computed without the inputs: a constant
            out_mask.append(True)
        else:
            out_mask.append(StaticLeaf(leaf))  # functions, ints, strings: returned as they are
    g = Graph(inputs, outputs, in_tree=in_tree, out_tree=(out_tree, tuple(out_mask)), name=name)
    return g


class StaticLeaf:
    """A non-array output leaf (a function, an int, a string) returned as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return f"StaticLeaf({self.value!r})"


def fn_name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def trace(fn: Callable, *args: Any, **kwargs: Any) -> Graph:
    """Trace `fn` on example arguments into a Graph.

    Arguments may be arrays, Python/NumPy scalars, specs (`graphc.spec("f32[64,784]")`), or
    nested containers of these; Python ints, strings and callables are passed through as they
    are (static). Closed-over arrays become constants.

    Example:
        >>> g = graphc.trace(lambda x: 3 * x**2 + 2 * x + 1, 2.0)
        >>> print(g)
        { lambda ; a:f64[]. let
            b:f64[] = integer_pow[n=2] a
            c:f64[] = mul 3.0:f64 b
            d:f64[] = mul 2.0:f64 a
            e:f64[] = add c d
            f:f64[] = add e 1.0:f64
          in (f,) }
    """
    try:
        return trace_flat(fn, args, kwargs, name=fn_name(fn))
    except GraphcError as e:
        # the message names the user's file:line; graphc's own frames would only distract
        raise e.with_traceback(None) from None


def unflatten_outputs(graph: Graph, values: list) -> Any:
    """Put flat output values back into the traced function's output structure."""
    if graph.out_tree is None:
        return values
    tree, mask = graph.out_tree
    it = iter(values)
    return pytree.unflatten(tree, [next(it) if m is True else m.value for m in mask])
