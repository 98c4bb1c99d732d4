"""graphc.nn's recurrent layers: RNNCell, LSTMCell, GRUCell and the sequence layers RNN, LSTM
and GRU, against a NumPy reference written here (a plain Python loop over time, each gate
from its own slice of the weights); PyTorch's parameter layout and initialisation; batch
first against time first; initial states; sequences against last states; the one scan node
the sequence layers trace to; errors that name the caller's line; gradients by finite
differences; a compiled training step; the bundled text corpus. A cross-check against
torch.nn runs only where torch is installed.

Most tests run on the reference interpreter (fast to start); a few compile with Numba.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import graphc
from graphc import nn

INTERP = "interpreter"
F64 = np.float64


def jit_i(fn):
    return graphc.jit(fn, backend=INTERP)


def _line(offset: int = 0) -> str:
    """file:line of the caller's line plus `offset`."""
    f = inspect.currentframe().f_back  # type: ignore[union-attr]
    return f"test_rnn.py:{f.f_lineno + offset}"  # type: ignore[union-attr]


# -- the NumPy reference -----------------------------------------------------------------------


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _params(cell):
    """(W_ih, W_hh, b_ih, b_hh) as float64, zeros for absent biases."""
    gh = cell.weight_ih.shape[0]
    zero = np.zeros(gh)
    b_ih = zero if cell.bias_ih is None else np.asarray(cell.bias_ih, F64)
    b_hh = zero if cell.bias_hh is None else np.asarray(cell.bias_hh, F64)
    return np.asarray(cell.weight_ih, F64), np.asarray(cell.weight_hh, F64), b_ih, b_hh


def ref_step(kind, p, x, state):
    """One step written from the gate equations, each gate with its own weight block."""
    W_ih, W_hh, b_ih, b_hh = p
    if kind in ("rnn", "rnn_relu"):
        a = x @ W_ih.T + b_ih + state @ W_hh.T + b_hh
        return np.tanh(a) if kind == "rnn" else np.maximum(a, 0.0)
    if kind == "lstm":
        h, c = state
        Wi, Wf, Wg, Wo = np.split(W_ih, 4)
        Ui, Uf, Ug, Uo = np.split(W_hh, 4)
        bi, bf, bg, bo = np.split(b_ih + b_hh, 4)
        i = _sig(x @ Wi.T + h @ Ui.T + bi)
        f = _sig(x @ Wf.T + h @ Uf.T + bf)
        g = np.tanh(x @ Wg.T + h @ Ug.T + bg)
        o = _sig(x @ Wo.T + h @ Uo.T + bo)
        c = f * c + i * g
        return o * np.tanh(c), c
    assert kind == "gru"
    h = state
    Wr, Wz, Wn = np.split(W_ih, 3)
    Ur, Uz, Un = np.split(W_hh, 3)
    bir, biz, bin_ = np.split(b_ih, 3)
    bhr, bhz, bhn = np.split(b_hh, 3)
    r = _sig(x @ Wr.T + bir + h @ Ur.T + bhr)
    z = _sig(x @ Wz.T + biz + h @ Uz.T + bhz)
    n = np.tanh(x @ Wn.T + bin_ + r * (h @ Un.T + bhn))
    return (1 - z) * n + z * h


def ref_zero(kind, batch, hidden):
    z = np.zeros((*batch, hidden))
    return (z, z) if kind == "lstm" else z


def ref_hidden(kind, state):
    return state[0] if kind == "lstm" else state


def ref_sequence(kind, cell, xs, state=None):
    """A Python loop over the leading (time) axis of `xs`: (outputs stacked, final state)."""
    p = _params(cell)
    xs = np.asarray(xs, F64)
    if state is None:
        state = ref_zero(kind, xs.shape[1:-1], cell.weight_hh.shape[1])
    ys = []
    for x in xs:
        state = ref_step(kind, p, x, state)
        ys.append(ref_hidden(kind, state))
    return np.stack(ys), state


# -- the layers under test ----------------------------------------------------------------------

KINDS = ["rnn", "rnn_relu", "lstm", "gru"]
GATES = {"rnn": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def make_cell(kind, i=3, h=4, **kw):
    cls = {"rnn": nn.RNNCell, "rnn_relu": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
    if kind == "rnn_relu":
        kw["nonlinearity"] = "relu"
    return cls[kind](i, h, **kw)


def make_layer(kind, i=3, h=4, **kw):
    cls = {"rnn": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
    if kind == "rnn_relu":
        kw["nonlinearity"] = "relu"
    return cls[kind](i, h, **kw)


def rand_state(kind, r, batch, h=4):
    # positive, so that a relu RNN's units are not all off from the first step
    s = r.uniform(0.2, 1.2, (*batch, h))
    return (s, r.standard_normal((*batch, h)) * 0.5) if kind == "lstm" else s


def close(got, want, tol=1e-12):
    gl, wl = graphc.tree_util.tree_leaves(got), graphc.tree_util.tree_leaves(want)
    assert len(gl) == len(wl)
    for g, w in zip(gl, wl, strict=True):
        assert np.shape(g) == np.shape(w), (np.shape(g), np.shape(w))
        np.testing.assert_allclose(np.asarray(g, F64), np.asarray(w, F64), rtol=tol, atol=tol)


@pytest.fixture
def r():
    return np.random.default_rng(0)


# -- cells ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [(2,), ()], ids=["batched", "unbatched"])
def test_cell_matches_numpy_reference(kind, batch, r):
    cell = make_cell(kind, dtype=F64, rng=1)
    x = r.standard_normal((*batch, 3))
    p = _params(cell)
    want0 = ref_step(kind, p, x, ref_zero(kind, batch, 4))
    close(cell(x), want0)  # no state: zeros
    s = rand_state(kind, r, batch)
    want = ref_step(kind, p, x, s)
    close(cell(x, s), want)
    close(jit_i(lambda c, x, s: c(x, s))(cell, x, s), want)


@pytest.mark.parametrize("kind", KINDS)
def test_cell_without_bias(kind, r):
    cell = make_cell(kind, bias=False, dtype=F64, rng=2)
    assert cell.bias_ih is None and cell.bias_hh is None
    assert sorted(nn.parameters(cell)) == ["weight_hh", "weight_ih"]
    x, s = r.standard_normal((2, 3)), rand_state(kind, r, (2,))
    close(cell(x, s), ref_step(kind, _params(cell), x, s))
    assert "bias=False" in repr(cell)


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_layout_and_initialisation_follow_pytorch(kind):
    i, h = 5, 6
    cell = make_cell(kind, i, h, rng=3)
    g = GATES[kind]
    shapes = {k: np.shape(v) for k, v in nn.parameters(cell).items()}
    assert shapes == {
        "weight_ih": (g * h, i),
        "weight_hh": (g * h, h),
        "bias_ih": (g * h,),
        "bias_hh": (g * h,),
    }
    # every array uniform in [-1/sqrt(H), 1/sqrt(H)], drawn in PyTorch's order
    k = 1 / math.sqrt(h)
    want = np.random.default_rng(3)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        v = getattr(cell, name)
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, want.uniform(-k, k, shapes[name]).astype(np.float32))
    big = make_cell(kind, 64, 64, rng=0).weight_hh
    assert np.abs(big).max() <= 1 / 8 and np.abs(big).max() > 0.99 / 8
    assert abs(float(big.mean())) < 0.01


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_layer_parameters_are_its_cells(kind):
    layer = make_layer(kind, 3, 4, rng=5)
    assert sorted(nn.parameters(layer)) == [
        "cell.bias_hh",
        "cell.bias_ih",
        "cell.weight_hh",
        "cell.weight_ih",
    ]
    cell = make_cell(kind, 3, 4, rng=5)
    for name, v in nn.parameters(cell).items():
        np.testing.assert_array_equal(nn.parameters(layer)["cell." + name], v)
    g = GATES[kind]
    assert layer.num_parameters() == g * 4 * 3 + g * 4 * 4 + 2 * g * 4


def test_rnn_cell_rejects_unknown_nonlinearity():
    with pytest.raises(graphc.GraphcError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNNCell(2, 3, nonlinearity="sigmoid")


# -- sequence layers: values -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_matches_numpy_loop(kind, r):
    layer = make_layer(kind, dtype=F64, rng=4)
    xs = r.standard_normal((6, 2, 3))
    ys, final = ref_sequence(kind, layer.cell, xs)
    close(layer(xs), ys)  # eager: the scan computes at once
    close(jit_i(lambda m, x: m(x))(layer, xs), ys)
    full = make_layer(kind, dtype=F64, rng=4, return_state=True)
    close(jit_i(lambda m, x: m(x))(full, xs), (ys, final))


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_compiled_float32(kind, r):
    layer = make_layer(kind, rng=6, return_state=True)
    xs = r.standard_normal((5, 2, 3)).astype(np.float32)
    ys, final = graphc.jit(lambda m, x: m(x))(layer, xs)
    assert ys.dtype == np.float32 and ys.shape == (5, 2, 4)
    want_ys, want_final = ref_sequence(kind, layer.cell, xs)
    close((ys, final), (want_ys, want_final), tol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_first_matches_time_first(kind, r):
    tf = make_layer(kind, dtype=F64, rng=7)
    bf = make_layer(kind, dtype=F64, rng=7, batch_first=True)
    xs = r.standard_normal((5, 3, 3))  # (T, N, I)
    want = tf(xs)
    got = jit_i(lambda m, x: m(x))(bf, np.swapaxes(xs, 0, 1))  # (N, T, I)
    assert got.shape == (3, 5, 4)
    close(np.swapaxes(got, 0, 1), want)
    # the last state does not depend on the layout either
    last_tf = make_layer(kind, dtype=F64, rng=7, return_sequences=False)(xs)
    last_bf = make_layer(kind, dtype=F64, rng=7, return_sequences=False, batch_first=True)(
        np.swapaxes(xs, 0, 1)
    )
    close(last_bf, last_tf)


@pytest.mark.parametrize("kind", KINDS)
def test_initial_state(kind, r):
    layer = make_layer(kind, dtype=F64, rng=18, return_state=True)
    xs = r.standard_normal((4, 2, 3))
    s0 = rand_state(kind, r, (2,))
    want = ref_sequence(kind, layer.cell, xs, s0)
    close(layer(xs, s0), want)
    close(jit_i(lambda m, x, s: m(x, s))(layer, xs, s0), want)
    assert not np.allclose(layer(xs)[0], want[0])  # the state given is used
    # running the second half from the first half's final state continues the sequence
    ys1, s1 = layer(xs[:2], s0)
    ys2, s2 = layer(xs[2:], s1)
    close(np.concatenate([ys1, ys2]), want[0])
    close(s2, want[1])


@pytest.mark.parametrize("kind", KINDS)
def test_return_sequences_or_last_state(kind, r):
    xs = r.standard_normal((5, 2, 3))
    ys, final = ref_sequence(kind, make_layer(kind, dtype=F64, rng=9).cell, xs)
    last = make_layer(kind, dtype=F64, rng=9, return_sequences=False)
    got = jit_i(lambda m, x: m(x))(last, xs)
    assert got.shape == (2, 4)
    close(got, ys[-1])
    close(got, ref_hidden(kind, final))
    both = make_layer(kind, dtype=F64, rng=9, return_sequences=False, return_state=True)
    close(both(xs), (ys[-1], final))


def test_return_sequences_false_keeps_no_outputs_in_the_loop(r):
    """Only the carry leaves the loop when the outputs are not asked for."""
    xs = r.standard_normal((5, 2, 3)).astype(np.float32)
    for keep, n_out in ((True, 3), (False, 2)):
        layer = nn.LSTM(3, 4, rng=0, return_sequences=keep)
        g = graphc.trace(lambda m, x: m(x), layer, xs)
        (loop,) = [n for n in g.equations if n.op == "scan"]
        assert len(loop.attrs["body"].outputs) == n_out


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_sequence_matches_a_batch_of_one(kind, r):
    layer = make_layer(kind, dtype=F64, rng=10, return_state=True)
    xs = r.standard_normal((4, 3))
    ys, final = layer(xs)
    assert ys.shape == (4, 4)
    ys1, final1 = layer(xs[:, None, :])
    close(ys, ys1[:, 0])
    close(final, graphc.tree_util.tree_map(lambda a: a[0], final1))
    # batch_first does not apply to an unbatched sequence: (T, I) either way
    bf = make_layer(kind, dtype=F64, rng=10, batch_first=True)
    close(bf(xs), ys)


def test_float32_layer_with_float64_input_computes_in_float64(r):
    layer = nn.GRU(3, 4, rng=0)
    xs = r.standard_normal((4, 2, 3))
    ys = layer(xs)
    assert ys.dtype == np.float64
    # float32 parameters: b_ih + b_hh is rounded to float32 before it meets the input
    close(ys, ref_sequence("gru", layer.cell, xs)[0], tol=1e-6)


def test_list_input_is_accepted():
    layer = nn.RNN(2, 3, dtype=F64, rng=0)
    xs = [[[0.5, -1.0]], [[1.0, 2.0]]]
    close(layer(xs), ref_sequence("rnn", layer.cell, np.array(xs))[0])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_sequence_layer_is_one_scan_whatever_the_length(kind):
    layer = make_layer(kind, rng=0)
    eqs = set()
    for T in (3, 40):
        g = graphc.trace(lambda m, x: m(x), layer, np.zeros((T, 2, 3), np.float32))
        ops = [n.op for n in g.equations]
        assert ops.count("scan") == 1
        eqs.add(tuple(ops))
    assert len(eqs) == 1


def test_printing():
    assert repr(nn.LSTM(8, 16)).startswith("LSTM(8 => 16)")
    assert "1_664 parameters" in repr(nn.LSTM(8, 16))
    assert repr(nn.GRU(2, 3, batch_first=True, return_sequences=False)).startswith(
        "GRU(2 => 3, batch_first=True, return_sequences=False)"
    )
    assert repr(nn.RNN(2, 3, nonlinearity="relu")).startswith("RNN(2 => 3, nonlinearity='relu')")
    assert repr(nn.LSTMCell(2, 3, bias=False)).startswith("LSTMCell(2 => 3, bias=False)")
    text = repr(nn.Chain(nn.Embedding(10, 4), nn.LSTM(4, 8, batch_first=True), nn.Dense(8, 10)))
    assert "  LSTM(4 => 8, batch_first=True)," in text


def test_state_saves_and_loads(tmp_path):
    a, b = nn.LSTM(3, 4, rng=0), nn.LSTM(3, 4, rng=1)
    nn.save(a, tmp_path / "lstm.npz")
    nn.load(b, tmp_path / "lstm.npz")
    for k, v in nn.parameters(a).items():
        np.testing.assert_array_equal(nn.parameters(b)[k], v)


# -- errors ------------------------------------------------------------------------------------


def test_bad_input_shape_names_the_callers_line():
    lstm = nn.LSTM(3, 4)
    x = np.zeros((5, 2, 7), np.float32)
    with pytest.raises(graphc.ShapeError) as e:
        lstm(x)
    assert e.value.location.endswith(_line(-1))
    assert e.value.message == (
        "LSTM(3 => 4) needs inputs of shape (T, N, 3) or (T, 3), got (5, 2, 7)"
    )


def test_bad_input_shape_under_jit_names_the_callers_line():
    gru = nn.GRU(3, 4, batch_first=True)
    f = graphc.jit(lambda m, x: m(x), backend=INTERP)
    with pytest.raises(graphc.ShapeError, match=r"\(N, T, 3\) or \(T, 3\) \(batch_first\)") as e:
        f(gru, np.zeros((2, 5, 3, 1), np.float32))
    assert e.value.location.endswith(_line(-3))  # the lambda's line


@pytest.mark.parametrize("kind", KINDS)
def test_bad_cell_input(kind):
    cell = make_cell(kind)
    with pytest.raises(graphc.ShapeError, match=r"needs inputs of shape \(N, 3\) or \(3,\)") as e:
        cell(np.zeros((2, 5), np.float32))
    assert e.value.location.endswith(_line(-1))
    with pytest.raises(graphc.ShapeError, match=r"got \(4, 2, 3\)"):
        cell(np.zeros((4, 2, 3), np.float32))  # a sequence given to a cell


def test_bad_state_shape():
    rnn = nn.RNN(3, 4)
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(graphc.ShapeError, match=r"hidden state of shape \(2, 4\).*got \(3, 4\)"):
        rnn(x, np.zeros((3, 4), np.float32))
    lstm = nn.LSTM(3, 4)
    with pytest.raises(graphc.ShapeError, match=r"state as a pair \(h, c\)") as e:
        lstm(x, np.zeros((2, 4), np.float32))
    assert e.value.location.endswith(_line(-1))
    with pytest.raises(graphc.ShapeError, match=r"LSTM \(c\) needs a hidden state of shape"):
        lstm(x, (np.zeros((2, 4), np.float32), np.zeros((2, 5), np.float32)))
    with pytest.raises(graphc.ShapeError, match=r"GRUCell\(3 => 4\) needs a hidden state"):
        nn.GRUCell(3, 4)(np.zeros((2, 3), np.float32), np.zeros(4, np.float32))


def test_state_of_another_dtype_is_cast():
    layer = nn.GRU(3, 4, rng=0, return_state=True)
    x = np.ones((2, 1, 3), np.float32)
    ys, h = layer(x, np.full((1, 4), 0.5))  # float64 state, float32 layer and input
    assert ys.dtype == np.float32 and h.dtype == np.float32


# -- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_cell_gradients(kind, r):
    cell = make_cell(kind, dtype=F64, rng=11)
    x, s = r.standard_normal((2, 3)), rand_state(kind, r, (2,))
    graphc.check_grads(lambda c, x, s: c(x, s), (cell, x, s), backend=INTERP)


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_gradients(kind, r):
    """Gradients through the scan, with respect to parameters, inputs and initial state."""
    layer = make_layer(kind, dtype=F64, rng=12, return_state=True)
    xs, s = r.standard_normal((4, 2, 3)), rand_state(kind, r, (2,))
    graphc.check_grads(lambda m, x, s: m(x, s), (layer, xs, s), backend=INTERP)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_sequence_gradients_batch_first_last_state(kind, r):
    layer = make_layer(kind, dtype=F64, rng=13, batch_first=True, return_sequences=False)
    xs = r.standard_normal((2, 5, 3))
    graphc.check_grads(lambda m, x: m(x), (layer, xs), backend=INTERP)


def test_lstm_gradient_matches_the_unrolled_reference(r):
    """graphc.grad of a loss through nn.LSTM equals the gradient of the same loss written as
    a Python loop over LSTMCell (no scan), which graphc differentiates without control flow."""
    lstm = nn.LSTM(3, 4, dtype=F64, rng=14)
    xs = r.standard_normal((5, 2, 3))
    target = r.standard_normal((5, 2, 4))

    def loss_scan(m, xs):
        return np.sum((m(xs) - target) ** 2)

    def loss_loop(m, xs):
        state, total = None, 0.0
        for t in range(xs.shape[0]):
            state = m.cell(xs[t], state)
            total = total + np.sum((state[0] - target[t]) ** 2)
        return total

    close(loss_scan(lstm, xs), loss_loop(lstm, xs))
    g_scan = graphc.grad(loss_scan, argnums=(0, 1), backend=INTERP)(lstm, xs)
    g_loop = graphc.grad(loss_loop, argnums=(0, 1), backend=INTERP)(lstm, xs)
    close(g_scan, g_loop, tol=1e-10)


def test_char_lstm_train_step_learns(r):
    """A compiled train step of Embedding -> LSTM -> Dense on a sequence to continue: the loss
    falls well below chance."""
    text = "abcdefgh" * 8
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text])
    x = np.stack([ids[i : i + 8] for i in range(0, 48, 3)])  # (16, 8)
    y = np.stack([ids[i + 1 : i + 9] for i in range(0, 48, 3)])
    nn.seed(0)
    model = nn.Chain(
        nn.Embedding(len(vocab), 8),
        nn.LSTM(8, 16, batch_first=True),
        nn.Dense(16, len(vocab)),
    )

    def loss_fn(logits, y):
        return nn.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))

    step = nn.train_step(model, loss_fn, nn.Adam(0.05))
    state = step.init(model)
    losses = []
    for _ in range(40):
        model, state, loss = step(model, state, x, y)
        losses.append(float(loss))
    assert losses[0] > 0.8 * math.log(len(vocab))
    assert losses[-1] < 0.2 * losses[0]
    assert len(step.compiles) == 1


# -- cross-check with PyTorch (only where it is installed) -----------------------------------


@pytest.mark.parametrize("kind", ["rnn", "rnn_relu", "lstm", "gru"])
def test_matches_torch_when_installed(kind, r):
    torch = pytest.importorskip("torch")
    ours = make_layer(kind, 3, 4, dtype=F64, rng=15, batch_first=True, return_state=True)
    cls = {"rnn": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM}
    cls["gru"] = torch.nn.GRU
    kw = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    theirs = cls[kind](3, 4, batch_first=True, dtype=torch.float64, **kw)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(theirs, name + "_l0").copy_(torch.from_numpy(getattr(ours.cell, name)))
    xs = r.standard_normal((2, 5, 3))
    s0 = rand_state(kind, r, (2,))
    ys, final = ours(xs, s0)
    if kind == "lstm":
        t_state = tuple(torch.from_numpy(a[None]) for a in s0)
    else:
        t_state = torch.from_numpy(s0[None])
    t_ys, t_final = theirs(torch.from_numpy(xs), t_state)
    close(ys, t_ys.detach().numpy())
    if kind == "lstm":
        close(final, tuple(a[0].detach().numpy() for a in t_final))
    else:
        close(final, t_final[0].detach().numpy())


# -- the text corpus ---------------------------------------------------------------------------


def test_text_corpus():
    text = graphc.data.text_corpus()
    assert text == graphc.data.text_corpus("genesis")
    assert 30_000 < len(text) < 100_000
    assert text.isascii()
    assert "In the beginning God created the heaven and the earth." in text
    assert 40 < len(set(text)) < 96
    with pytest.raises(graphc.GraphcError, match="unknown text 'moby'"):
        graphc.data.text_corpus("moby")


# -- the example -------------------------------------------------------------------------------


def test_lstm_text_example_model_and_sampling(r):
    """examples/lstm_text.py: its model gives the same logits looped by scan or in Python, its
    loss is the mean cross-entropy over positions, and sampling continues the prompt with
    characters of the vocabulary."""
    import lstm_text

    vocab = sorted(set("abc de"))
    nn.seed(0)
    scan_model = lstm_text.CharLSTM(len(vocab), 4, 6)
    loop_model = lstm_text.CharLSTM(len(vocab), 4, 6, unrolled=True).load_state(scan_model.state())
    assert loop_model.unrolled and not scan_model.unrolled
    ids = r.integers(0, len(vocab), (2, 5))
    logits = scan_model(ids)
    assert logits.shape == (2, 5, len(vocab))
    close(loop_model(ids), logits, tol=1e-5)
    targets = r.integers(0, len(vocab), (2, 5))
    flat = logits.reshape(10, -1).astype(F64)
    want = np.mean(
        [np.log(np.sum(np.exp(row))) - row[t] for row, t in zip(flat, targets.ravel(), strict=True)]
    )
    close(lstm_text.sequence_loss(logits, targets), want, tol=1e-5)
    text = lstm_text.sample(scan_model, vocab, "ab", 20, 0.8, seed=1)
    assert text.startswith("ab") and len(text) == 22 and set(text) <= set(vocab)
    assert text == lstm_text.sample(scan_model, vocab, "ab", 20, 0.8, seed=1)
