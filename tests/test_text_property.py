"""Property: for random well-typed programs, IR text is a faithful serialisation.

print -> parse -> print is a fixed point, the parsed graph is structurally equal to the traced one
(same hash), and both evaluate to the same values (NaN in the same places) on random inputs.

Programs are built while tracing: the function handed to graphc.trace draws each step (an op and
its operands, chosen among the values made so far) from hypothesis, using the tracers' concrete
shapes and dtypes to keep every step well typed.
"""

import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
from hypothesis import HealthCheck, given, settings

import graphc
import graphc.numpy as gnp
from graphc.ir import _is_constvar, node_names
from graphc.verify import verify

FLOAT_DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
MAX_SIZE = 256  # keep values small: steps that would make a bigger array are skipped

SPECIAL_LITERALS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    1e-45,
    1e-30,
    3e38,
    -3e38,
    math.inf,
    -math.inf,
    math.nan,
]
literals = st.one_of(
    st.sampled_from(SPECIAL_LITERALS),
    st.floats(-1e4, 1e4, width=32),  # exactly representable in f32
    st.floats(-1e30, 1e30),  # rounded when the literal takes an f32 operand's type
)


def _elements(dtype):
    width = 32 if dtype == np.float32 else 64
    return st.one_of(
        st.floats(-1e6, 1e6, width=width),
        st.sampled_from(
            [0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, float(dtype.type(1e-45))]
        ),
    )


def _draw_index(data, n, label):
    """An index into a pool of n values, favouring the most recent ones."""
    return data.draw(
        st.one_of(st.integers(max(0, n - 3), n - 1), st.integers(0, n - 1)), label=label
    )


def _broadcastable(*shapes):
    try:
        np.broadcast_shapes(*shapes)
        return True
    except ValueError:
        return False


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


class Program:
    """Draws a program step by step while it is being traced."""

    def __init__(self, data):
        self.data = data

    def draw(self, strategy, label=None):
        return self.data.draw(strategy, label=label)

    # -- operands ------------------------------------------------------------------------------
    def pick(self, pool, label="operand"):
        return pool[_draw_index(self.data, len(pool), label)]

    def const_like(self, x):
        """A small closed-over array whose shape broadcasts against x."""
        keep = self.draw(st.integers(0, x.ndim), label="const ndim")
        shape = tuple(
            1 if self.draw(st.booleans(), label="const dim is 1") else d
            for d in x.shape[x.ndim - keep :]
        )
        dtype = self.draw(st.sampled_from(FLOAT_DTYPES), label="const dtype")
        return self.draw(hnp.arrays(dtype, shape, elements=_elements(dtype)), label="const")

    def other_operand(self, pool, x):
        """A second operand for x: a traced value that broadcasts with it, a weakly typed
        Python float, or a closed-over constant array."""
        kind = self.draw(st.sampled_from(["traced", "literal", "const"]), label="operand kind")
        if kind == "traced":
            fits = [
                v
                for v in pool
                if _broadcastable(v.shape, x.shape)
                and _size(np.broadcast_shapes(v.shape, x.shape)) <= MAX_SIZE
            ]
            return self.pick(fits)  # x itself always fits
        if kind == "literal":
            return self.draw(literals, label="literal")
        return self.const_like(x)

    # -- steps ---------------------------------------------------------------------------------
    UNARY = {
        "tanh": np.tanh,
        "exp": lambda x: np.exp(np.clip(x, -30.0, 30.0)),
        "abs": np.abs,
        "sin": np.sin,
        "sigmoid": gnp.sigmoid,
        "relu": gnp.relu,
        "square": np.square,
        "neg": lambda x: -x,
    }
    BINARY = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
        "maximum": np.maximum,
    }
    COMPARE = {
        "gt": lambda a, b: a > b,
        "le": lambda a, b: a <= b,
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
    }

    def unary(self, pool):
        fn = self.draw(st.sampled_from(sorted(self.UNARY)), label="unary")
        return self.UNARY[fn](self.pick(pool))

    def binary(self, pool):
        x = self.pick(pool)
        y = self.other_operand(pool, x)
        fn = self.draw(st.sampled_from(sorted(self.BINARY)), label="binary")
        if self.draw(st.booleans(), label="swap operands"):
            x, y = y, x
        return self.BINARY[fn](x, y)

    def where(self, pool):
        x = self.pick(pool)
        cond = self.COMPARE[self.draw(st.sampled_from(sorted(self.COMPARE)), label="compare")](
            x, self.other_operand(pool, x)
        )
        a = self.other_operand(pool, x) if self.draw(st.booleans(), label="a") else x
        b = self.other_operand(pool, x)
        if self.draw(st.booleans(), label="swap branches"):
            a, b = b, a
        shapes = [np.shape(v) for v in (cond, a, b)]
        if not _broadcastable(*shapes) or _size(np.broadcast_shapes(*shapes)) > MAX_SIZE:
            return np.where(cond, x, 0.0)
        return np.where(cond, a, b)

    def reduce(self, pool):
        x = self.pick(pool)
        fn = self.draw(st.sampled_from([np.sum, np.max]), label="reduction")
        how = self.draw(st.sampled_from(["all", "int", "tuple"]), label="axis kind")
        if how == "all" or x.ndim == 0:
            axis = None
        elif how == "int":
            axis = self.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
        else:
            axis = tuple(
                self.draw(
                    st.lists(st.integers(0, x.ndim - 1), unique=True, max_size=x.ndim), label="axes"
                )
            )
        return fn(x, axis=axis, keepdims=self.draw(st.booleans(), label="keepdims"))

    def reshape(self, pool):
        x = self.pick(pool)
        primes = [p for p in range(2, 17) if all(p % q for q in range(2, p))]
        factors, n = [], x.size
        for p in primes:
            while n % p == 0:
                factors.append(p)
                n //= p
        if n > 1:  # a prime factor above the list's (17 = 8 + 8 + 1 concatenated)
            factors.append(n)
        ndim = self.draw(st.integers(0 if x.size == 1 else 1, 3), label="new ndim")
        shape = [1] * ndim
        for f in factors:
            shape[self.draw(st.integers(0, ndim - 1), label="factor goes to")] *= f
        if ndim and self.draw(st.booleans(), label="use -1"):
            shape[self.draw(st.integers(0, ndim - 1), label="-1 at")] = -1
        return x.reshape(tuple(shape))

    def transpose(self, pool):
        x = self.pick(pool)
        if x.ndim < 2:
            return x.T
        return np.transpose(x, self.draw(st.permutations(range(x.ndim)), label="perm"))

    def slice(self, pool):
        x = self.pick(pool)
        key = []
        for n in x.shape:
            if self.draw(st.integers(0, 5), label="int index?") == 0:
                key.append(self.draw(st.integers(-n, n - 1), label="index"))
                continue
            step = self.draw(st.sampled_from([1, 2, 3, -1, -2]), label="step")
            start = self.draw(st.none() | st.integers(-n - 1, n + 1), label="start")
            stop = self.draw(st.none() | st.integers(-n - 1, n + 1), label="stop")
            if not range(n)[slice(start, stop, step)]:  # keep arrays non-empty
                start = stop = None
            key.append(slice(start, stop, step))
        return x[tuple(key)]

    def concatenate(self, pool):
        x = self.pick(pool)
        if x.ndim == 0:
            return x
        axis = self.draw(st.integers(-x.ndim, x.ndim - 1), label="concat axis")
        ax = axis % x.ndim

        def fits(v):
            return v.ndim == x.ndim and all(
                a == b for i, (a, b) in enumerate(zip(v.shape, x.shape, strict=True)) if i != ax
            )

        kind = self.draw(st.sampled_from(["traced", "const"]), label="concat with")
        if kind == "traced":
            others = [self.pick([v for v in pool if fits(v)])]  # x itself fits
        else:
            shape = list(x.shape)
            shape[ax] = self.draw(st.integers(1, 3), label="const length")
            dtype = self.draw(st.sampled_from(FLOAT_DTYPES), label="const dtype")
            others = [
                self.draw(hnp.arrays(dtype, tuple(shape), elements=_elements(dtype)), label="const")
            ]
        parts = [x, *others]
        if self.draw(st.booleans(), label="reverse"):
            parts.reverse()
        if sum(p.shape[ax] for p in parts) * x.size // x.shape[ax] > MAX_SIZE:
            return x
        return np.concatenate(parts, axis=axis)

    def matmul(self, pool):
        x = self.pick(pool)
        if x.ndim == 0:
            return x

        kind = self.draw(st.sampled_from(["traced", "const", "self"]), label="matmul with")
        cands = [v for v in pool if _matmul_fits(x, v)]
        if kind == "traced" and cands:
            y = self.pick(cands)
        elif kind == "self" and x.ndim >= 2:
            y = np.swapaxes(x, -1, -2)
        else:
            k = self.draw(st.integers(0, 3), label="const cols")  # 0: a vector
            shape = (x.shape[-1],) if k == 0 else (x.shape[-1], k)
            dtype = self.draw(st.sampled_from(FLOAT_DTYPES), label="const dtype")
            y = self.draw(
                hnp.arrays(dtype, shape, elements=st.floats(-4, 4, width=32)), label="const"
            )
        if self.draw(st.booleans(), label="swap matmul") and _matmul_fits(y, x):
            return y @ x
        return x @ y

    def astype(self, pool):
        x = self.pick(pool)
        return x.astype(np.float64 if x.dtype == np.float32 else np.float32)

    STEPS = [
        "unary",
        "binary",
        "where",
        "reduce",
        "reshape",
        "transpose",
        "slice",
        "concatenate",
        "matmul",
        "astype",
    ]

    def __call__(self, *inputs):
        pool = list(inputs)
        for _ in range(self.draw(st.integers(4, 20), label="steps")):
            step = self.draw(st.sampled_from(self.STEPS), label="step")
            out = getattr(self, step)(pool)
            assert isinstance(out, graphc.Tracer)
            pool.append(out)
        # returning every value made keeps the whole program alive (nothing unreachable is
        # dropped); the other modes give single outputs, repeated outputs and inputs as outputs
        mode = self.draw(st.sampled_from(["all", "last", "some"]), label="outputs")
        if mode == "all":
            return tuple(pool[len(inputs) :])
        if mode == "last":
            return pool[-1]
        n_out = self.draw(st.integers(1, 4), label="number of outputs")
        return tuple([pool[-1]] + [self.pick(pool, "output") for _ in range(n_out - 1)])


def _matmul_fits(a, b):
    """a @ b is defined (NumPy's rules, batch axes broadcast) and not too big."""
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return False
    try:
        out = np.matmul(np.zeros(np.shape(a), np.float32), np.zeros(np.shape(b), np.float32))
    except ValueError:
        return False
    return out.size <= MAX_SIZE


input_specs = st.lists(
    st.builds(
        graphc.spec,
        st.lists(st.integers(1, 4), max_size=3).map(tuple),
        st.sampled_from(FLOAT_DTYPES),
    ),
    min_size=1,
    max_size=3,
)


def _large_constants(g):
    names = node_names(g)
    return {names[id(n)]: n.attrs["value"].value for n in g.nodes if _is_constvar(n)}


def _random_inputs(g, seed):
    rng = np.random.default_rng(seed)
    out = []
    for n in g.inputs:
        x = rng.standard_normal(n.aval.shape) * rng.choice([0.1, 1.0, 10.0, 1e3])
        # sprinkle a few special values in
        special = rng.random(n.aval.shape) < 0.1
        x = np.where(special, rng.choice([0.0, -0.0, np.inf, -np.inf, np.nan], n.aval.shape), x)
        out.append(np.asarray(x).astype(n.aval.dtype))
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), specs=input_specs, seed=st.integers(0, 2**32 - 1))
def test_print_parse_round_trip(data, specs, seed):
    g = verify(graphc.trace(Program(data), *specs))
    consts = _large_constants(g)

    text = str(g)
    g2 = graphc.parse(text, consts)
    assert str(g2) == text  # print -> parse -> print is a fixed point
    assert g2 == g and hash(g2) == hash(g)
    assert g2.structural_hash() == g.structural_hash()
    assert [n.aval for n in g2.inputs] == [n.aval for n in g.inputs]
    assert [n.aval for n in g2.outputs] == [n.aval for n in g.outputs]

    # with source locations too: they parse back and print the same
    located = g.pretty(locations=True)
    g3 = graphc.parse(located, consts)
    assert g3.pretty(locations=True) == located
    assert g3 == g
    assert [n.meta.loc for n in g3.equations] == [n.meta.loc for n in g.equations]

    args = _random_inputs(g, seed)
    with np.errstate(all="ignore"):
        want = graphc.evaluate(g, *args)
        got = graphc.evaluate(g2, *args)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(a, b)  # NaNs compare equal in the same places
