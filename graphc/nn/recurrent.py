"""Recurrent layers: the cells `RNNCell`, `LSTMCell` and `GRUCell` (one time step) and the
sequence layers `RNN`, `LSTM` and `GRU` (a whole sequence, looped with `graphc.scan`, so the
step is traced once whatever the sequence length).

Conventions are PyTorch's, so weights load across unchanged:

* Parameters: `weight_ih` `(G*H, I)`, `weight_hh` `(G*H, H)`, `bias_ih` and `bias_hh`
  `(G*H,)`, where H is the hidden size, I the input size and G the number of gates (1 for
  RNN, 4 for LSTM, 3 for GRU), stacked along the first axis in PyTorch's order.
* RNN: `h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)` (or relu with `nonlinearity="relu"`).
* LSTM, gates in the order i, f, g, o:
  `i = sigmoid(.)`, `f = sigmoid(.)`, `g = tanh(.)`, `o = sigmoid(.)` of
  `x W_ih^T + b_ih + h W_hh^T + b_hh`; `c' = f * c + i * g`; `h' = o * tanh(c')`.
* GRU, gates in the order r, z, n, with the reset gate applied to the recurrent term
  *after* its matrix product and bias, as PyTorch does:
  `r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)`, `z = sigmoid(... z ...)`,
  `n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))`, `h' = (1 - z) * n + z * h`.
* Initialisation: every weight and bias uniform in `[-1/sqrt(H), 1/sqrt(H)]`, drawn in the
  order weight_ih, weight_hh, bias_ih, bias_hh.
* Sequence layers are time first, `(T, N, I)`, unless `batch_first=True`, `(N, T, I)`; an
  input `(T, I)` is one unbatched sequence. The state is `h` `(N, H)` (`(H,)` unbatched), or
  `(h, c)` for LSTM; it starts at zeros unless given. Unlike PyTorch there is one layer and
  one direction per module, so the state has no leading `(num_layers * directions)` axis;
  stack layers with `nn.Chain`.

Calling: `cell(x, state=None) -> new state`; `layer(x, state=None)` returns the outputs of
every step `(T, N, H)` (`(N, T, H)` batch first), or only the last hidden state `(N, H)`
with `return_sequences=False`, and with `return_state=True` the pair
`(that output, final state)`.

Example:
    >>> from graphc import nn
    >>> lstm = nn.LSTM(8, 16, batch_first=True)
    >>> lstm(np.zeros((2, 5, 8), np.float32)).shape
    (2, 5, 16)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import graphc
from graphc.ir import ShapeError
from graphc.nn.activations import relu, sigmoid, tanh
from graphc.nn.init import _gen
from graphc.nn.module import Module
from graphc.trace import user_location

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in np.shape(x))


class _Cell(Module):
    """What the three cells share: PyTorch's parameter layout and initialisation, the input
    projection and the checks of inputs and states. Subclasses set `_gates` and define
    `_step(state, xp, rec)`: one step given the input term `xp` (`_project(x)`) and the
    recurrent weights `rec` (`_recurrent()`), both computed outside a sequence's loop."""

    _gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: Any = None,
    ):
        g = _gen(rng)
        k = 1.0 / math.sqrt(hidden_size)
        gh = self._gates * hidden_size

        def draw(*shape: int) -> np.ndarray:
            return g.uniform(-k, k, shape).astype(dtype)

        self.weight_ih = draw(gh, input_size)
        self.weight_hh = draw(gh, hidden_size)
        self.bias_ih = draw(gh) if bias else None
        self.bias_hh = draw(gh) if bias else None

    @property
    def input_size(self) -> int:
        return _shape(self.weight_ih)[1]

    @property
    def hidden_size(self) -> int:
        return _shape(self.weight_hh)[1]

    def _input_bias(self) -> Any:
        """The bias added to the input term: `b_ih + b_hh`, both being plain sums in the gates
        (GRU keeps part of `b_hh` in the step)."""
        if self.bias_hh is None:
            return self.bias_ih
        return self.bias_hh if self.bias_ih is None else self.bias_ih + self.bias_hh

    def _project(self, x: Any) -> Any:
        """`x W_ih^T` plus `_input_bias()` over the last axis of `x`: the sequence layers
        compute it for every time step at once, in one matrix product, so that the loop holds
        only the recurrent product."""
        xp = x @ self.weight_ih.T
        bias = self._input_bias()
        return xp if bias is None else xp + bias

    def _recurrent(self) -> tuple[Any, Any]:
        """What the step needs of the recurrent weights, prepared once outside the loop:
        (W_hh^T, the part of b_hh that stays in the step or None)."""
        return self.weight_hh.T, None

    def _step(self, state: Any, xp: Any, rec: tuple[Any, Any]) -> Any:
        raise NotImplementedError

    def _zero_state(self, batch: tuple[int, ...], dtype: Any) -> Any:
        return np.zeros((*batch, self.hidden_size), dtype)

    def _check_state(self, state: Any, batch: tuple[int, ...], dtype: Any, who: str) -> Any:
        """`state` checked against the batch shape (an error at the user's line otherwise)
        and cast to the dtype the step computes in, so the loop's carry keeps its type."""
        want = (*batch, self.hidden_size)
        got = _shape(state)
        if got != want:
            raise ShapeError(
                f"{who} needs a hidden state of shape {want} for this input, got {got}",
                user_location(),
            )
        return state if state.dtype == dtype else state.astype(dtype)

    def _state_dtype(self, x: Any) -> np.dtype:
        return np.result_type(x.dtype, self.weight_ih.dtype, self.weight_hh.dtype)

    def _name(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def _bad_input(self, x: Any, expected: str) -> ShapeError:
        return ShapeError(
            f"{self._name()} needs inputs of shape {expected}, got {_shape(x)}", user_location()
        )

    def __call__(self, x: Any, state: Any = None) -> Any:
        x = x if hasattr(x, "dtype") else np.asarray(x)
        i = self.input_size
        if np.ndim(x) not in (1, 2) or _shape(x)[-1] != i:
            raise self._bad_input(x, f"(N, {i}) or ({i},)")
        batch = _shape(x)[:-1]
        dt = self._state_dtype(x)
        if state is None:
            state = self._init_state(batch, dt)
        else:
            state = self._check_init(state, batch, dt, self._name())
        return self._step(state, self._project(x), self._recurrent())

    # the state is one array; LSTMCell overrides these two for its pair (h, c)
    def _init_state(self, batch: tuple[int, ...], dtype: Any) -> Any:
        return self._zero_state(batch, dtype)

    def _check_init(self, state: Any, batch: tuple[int, ...], dtype: Any, who: str) -> Any:
        return self._check_state(state, batch, dtype, who)

    def _hidden(self, state: Any) -> Any:
        """The output h of a state."""
        return state

    def extra_repr(self) -> str:
        s = f"{self.input_size} => {self.hidden_size}"
        return s if self.bias_ih is not None else s + ", bias=False"


class RNNCell(_Cell):
    """One step of an Elman RNN: `h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)` with `act`
    tanh (or relu: `nonlinearity="relu"`); PyTorch's `nn.RNNCell`. Input `(N, I)` or `(I,)`,
    state `h` `(N, H)` or `(H,)` (zeros when not given); returns the new `h`.

    Example:
        >>> cell = nn.RNNCell(3, 5)
        >>> h = cell(np.ones((2, 3), np.float32))
        >>> cell(np.ones((2, 3), np.float32), h).shape
        (2, 5)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: str = "tanh",
        bias: bool = True,
        dtype: Any = np.float32,
        rng: Any = None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise graphc.GraphcError(
                f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        super().__init__(input_size, hidden_size, bias=bias, dtype=dtype, rng=rng)
        self.nonlinearity = nonlinearity

    def _act(self) -> Callable[[Any], Any]:
        return tanh if self.nonlinearity == "tanh" else relu

    def _step(self, state: Any, xp: Any, rec: tuple[Any, Any]) -> Any:
        return self._act()(xp + state @ rec[0])

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + ", nonlinearity='relu'"


class LSTMCell(_Cell):
    """One step of a long short-term memory cell, PyTorch's `nn.LSTMCell`: gates i, f, g, o
    stacked in that order in `weight_ih` `(4H, I)` and `weight_hh` `(4H, H)`;
    `c' = f * c + i * g`, `h' = o * tanh(c')`. Input `(N, I)` or `(I,)`, state the pair
    `(h, c)` (zeros when not given); returns the new `(h, c)`.

    Example:
        >>> cell = nn.LSTMCell(3, 5)
        >>> h, c = cell(np.ones((2, 3), np.float32))
        >>> h.shape, c.shape
        ((2, 5), (2, 5))
    """

    _gates = 4

    def _step(self, state: Any, xp: Any, rec: tuple[Any, Any]) -> Any:
        h, c = state
        n = self.hidden_size
        z = xp + h @ rec[0]
        i = sigmoid(z[..., :n])
        f = sigmoid(z[..., n : 2 * n])
        g = tanh(z[..., 2 * n : 3 * n])
        o = sigmoid(z[..., 3 * n :])
        c = f * c + i * g
        return o * tanh(c), c

    def _init_state(self, batch: tuple[int, ...], dtype: Any) -> Any:
        return self._zero_state(batch, dtype), self._zero_state(batch, dtype)

    def _check_init(self, state: Any, batch: tuple[int, ...], dtype: Any, who: str) -> Any:
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ShapeError(
                f"{who} needs its state as a pair (h, c), got {type(state).__name__}",
                user_location(),
            )
        h, c = state
        return (
            self._check_state(h, batch, dtype, who + " (h)"),
            self._check_state(c, batch, dtype, who + " (c)"),
        )

    def _hidden(self, state: Any) -> Any:
        return state[0]


class GRUCell(_Cell):
    """One step of a gated recurrent unit, PyTorch's `nn.GRUCell`: gates r, z, n stacked in
    that order in `weight_ih` `(3H, I)` and `weight_hh` `(3H, H)`, the reset gate scaling the
    recurrent term after its product and bias: `n = tanh(x W_in^T + b_in + r * (h W_hn^T +
    b_hn))`, `h' = (1 - z) * n + z * h`. Input `(N, I)` or `(I,)`, state `h`; returns the new
    `h`.

    Example:
        >>> nn.GRUCell(3, 5)(np.ones((2, 3), np.float32)).shape
        (2, 5)
    """

    _gates = 3

    def _input_bias(self) -> Any:
        # b_hr and b_hz are plain sums; b_hn is scaled by the reset gate, so it stays in the step
        if self.bias_hh is None:
            return self.bias_ih
        n = self.hidden_size
        b = self.bias_hh * (np.arange(3 * n) < 2 * n).astype(self.bias_hh.dtype)
        return b if self.bias_ih is None else self.bias_ih + b

    def _recurrent(self) -> tuple[Any, Any]:
        b_hn = None if self.bias_hh is None else self.bias_hh[2 * self.hidden_size :]
        return self.weight_hh.T, b_hn

    def _step(self, state: Any, xp: Any, rec: tuple[Any, Any]) -> Any:
        n = self.hidden_size
        w, b_hn = rec
        hp = state @ w
        r = sigmoid(xp[..., :n] + hp[..., :n])
        z = sigmoid(xp[..., n : 2 * n] + hp[..., n : 2 * n])
        hn = hp[..., 2 * n :]
        if b_hn is not None:
            hn = hn + b_hn
        cand = tanh(xp[..., 2 * n :] + r * hn)
        return (1 - z) * cand + z * state


class _Sequence(Module):
    """A cell looped over a sequence with `graphc.scan`. The input projection of every step is
    one matrix product before the loop; the loop holds the recurrent product and the gates."""

    _cell_type: type[_Cell] = _Cell
    _leaf_display = True  # printed on one line: the cell's parameters are this layer's

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        batch_first: bool = False,
        return_sequences: bool = True,
        return_state: bool = False,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: Any = None,
        **cell_options: Any,
    ):
        self.cell = self._cell_type(
            input_size, hidden_size, bias=bias, dtype=dtype, rng=rng, **cell_options
        )
        self.batch_first = bool(batch_first)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)

    def _expected(self) -> str:
        i = self.cell.input_size
        lead = "(N, T" if self.batch_first else "(T, N"
        return f"{lead}, {i}) or (T, {i})" + (" (batch_first)" if self.batch_first else "")

    def __call__(self, x: Any, state: Any = None) -> Any:
        cell = self.cell
        x = x if hasattr(x, "dtype") else np.asarray(x)
        ndim = np.ndim(x)
        if ndim not in (2, 3) or _shape(x)[-1] != cell.input_size:
            raise ShapeError(
                f"{type(self).__name__}({self.extra_repr()}) needs inputs of shape "
                f"{self._expected()}, got {_shape(x)}",
                user_location(),
            )
        if ndim == 3 and self.batch_first:
            x = np.swapaxes(x, 0, 1)  # the loop runs over the leading axis: time first
        steps, batch = _shape(x)[0], _shape(x)[1:-1]
        dt = cell._state_dtype(x)
        if state is None:
            state = cell._init_state(batch, dt)
        else:
            state = cell._check_init(state, batch, dt, f"{type(self).__name__}")
        # one (T*N, I) @ (I, G*H) product for every step's input term
        flat = x.reshape(steps * int(np.prod(batch, dtype=np.int64)), cell.input_size)
        xp = cell._project(flat).reshape(steps, *batch, -1)
        rec = cell._recurrent()
        keep = self.return_sequences

        def step(carry: Any, xp_t: Any) -> tuple[Any, Any]:
            new = cell._step(carry, xp_t, rec)
            return new, (cell._hidden(new) if keep else None)

        final, ys = graphc.scan(step, state, xp)
        if keep:
            out = np.swapaxes(ys, 0, 1) if ndim == 3 and self.batch_first else ys
        else:
            out = cell._hidden(final)
        return (out, final) if self.return_state else out

    def extra_repr(self) -> str:
        s = self.cell.extra_repr()
        for flag, default in (
            ("batch_first", False),
            ("return_sequences", True),
            ("return_state", False),
        ):
            if getattr(self, flag) != default:
                s += f", {flag}={getattr(self, flag)}"
        return s


class RNN(_Sequence):
    """An Elman RNN over a sequence (PyTorch's `nn.RNN` with one layer): `RNNCell` looped
    with `graphc.scan`. Input `(T, N, I)`, `(N, T, I)` with `batch_first=True`, or `(T, I)`;
    optional initial state `h` `(N, H)`. Returns the hidden state of every step, or the last
    one with `return_sequences=False`; `return_state=True` adds the final state.

    Example:
        >>> rnn = nn.RNN(3, 5, batch_first=True)
        >>> rnn(np.ones((2, 7, 3), np.float32)).shape
        (2, 7, 5)
    """

    _cell_type = RNNCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: str = "tanh",
        batch_first: bool = False,
        return_sequences: bool = True,
        return_state: bool = False,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: Any = None,
    ):
        super().__init__(
            input_size,
            hidden_size,
            batch_first=batch_first,
            return_sequences=return_sequences,
            return_state=return_state,
            bias=bias,
            dtype=dtype,
            rng=rng,
            nonlinearity=nonlinearity,
        )


class LSTM(_Sequence):
    """A long short-term memory layer over a sequence (PyTorch's `nn.LSTM` with one layer):
    `LSTMCell` looped with `graphc.scan`. Input `(T, N, I)`, `(N, T, I)` with
    `batch_first=True`, or `(T, I)`; optional initial state `(h, c)`, each `(N, H)`. Returns
    `h` of every step, or the last `h` with `return_sequences=False`; `return_state=True`
    adds the final `(h, c)`.

    Example:
        >>> lstm = nn.LSTM(3, 5, batch_first=True, return_state=True)
        >>> y, (h, c) = lstm(np.ones((2, 7, 3), np.float32))
        >>> y.shape, h.shape
        ((2, 7, 5), (2, 5))
    """

    _cell_type = LSTMCell


class GRU(_Sequence):
    """A gated recurrent unit layer over a sequence (PyTorch's `nn.GRU` with one layer):
    `GRUCell` looped with `graphc.scan`. Input `(T, N, I)`, `(N, T, I)` with
    `batch_first=True`, or `(T, I)`; optional initial state `h` `(N, H)`. Returns `h` of
    every step, or the last with `return_sequences=False`; `return_state=True` adds the final
    `h`.

    Example:
        >>> gru = nn.GRU(3, 5, return_sequences=False)
        >>> gru(np.ones((7, 2, 3), np.float32)).shape
        (2, 5)
    """

    _cell_type = GRUCell
