"""Train a character-level LSTM language model on the text graphc ships (Genesis 1-15, King
James Version) with graphc.nn, then sample a continuation from it.

The model is Embedding -> LSTM -> Dense over the characters of the text. `nn.LSTM` loops its
cell with `graphc.scan`, so the step is traced once, whatever the sequence length, and the
whole training step (forward, loss, backward through the loop, Adam update) is one compiled
executable. `--unrolled` writes the loop over time in Python instead: the same numbers, but one
copy of the cell per time step in the graph, so compiling takes longer as sequences grow.

The default run is short (a few small epochs); ask for more with the flags:

    python examples/lstm_text.py [--epochs 3] [--steps 30] [--seq 32] [--batch 32]
                                 [--hidden 96] [--sample 300] [--unrolled]
    python examples/lstm_text.py --epochs 30 --steps 100 --seq 100 --hidden 256   # longer
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import graphc
from graphc import data, nn


class CharLSTM(nn.Module):
    """Characters -> embedding -> LSTM -> logits over the vocabulary, batch first."""

    def __init__(self, vocab: int, embed: int, hidden: int, unrolled: bool = False):
        self.embed = nn.Embedding(vocab, embed, init=nn.glorot_uniform)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Dense(hidden, vocab)
        self.unrolled = unrolled

    def __call__(self, ids):
        x = self.embed(ids)  # (N, T, E)
        if not self.unrolled:
            h = self.lstm(x)  # (N, T, H): one scan over time
        else:  # a Python loop: the graph holds one cell per step
            state, hs = None, []
            for t in range(x.shape[1]):
                state = self.lstm.cell(x[:, t], state)
                hs.append(state[0])
            h = np.stack(hs, axis=1)
        return self.head(h)  # (N, T, V)


def sequence_loss(logits, targets):
    """Mean cross-entropy of every position's next-character prediction."""
    return nn.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def windows(ids: np.ndarray, seq: int, batch: int, rng: np.random.Generator):
    """A batch of random windows: inputs ids[s:s+seq], targets ids[s+1:s+seq+1]."""
    starts = rng.integers(0, len(ids) - seq - 1, batch)
    x = np.stack([ids[s : s + seq] for s in starts])
    y = np.stack([ids[s + 1 : s + seq + 1] for s in starts])
    return x, y


def sample(model: CharLSTM, vocab: list[str], prompt: str, n: int, temperature: float, seed: int):
    """Feed `prompt`, then draw `n` characters one at a time (eager NumPy, one cell step each)."""
    rng = np.random.default_rng(seed)
    index = {c: i for i, c in enumerate(vocab)}
    cell, state, logits = model.lstm.cell, None, None
    out = []
    for c in prompt:
        state = cell(model.embed(np.array([index[c]])), state)
    for _ in range(n):
        logits = model.head(state[0])[0] / temperature
        p = np.exp(logits - logits.max())
        k = int(rng.choice(len(vocab), p=p / p.sum()))
        out.append(vocab[k])
        state = cell(model.embed(np.array([k])), state)
    return prompt + "".join(out)


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="training steps per epoch")
    ap.add_argument("--seq", type=int, default=32, help="characters per training window")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--sample", type=int, default=300, help="characters to sample at the end")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--prompt", default="And God said, ")
    ap.add_argument("--unrolled", action="store_true", help="loop over time in Python")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    text = data.text_corpus()
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text], np.int64)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    print(f"text: {len(text):,} characters, {len(vocab)} distinct; training on the first 90%")

    nn.seed(args.seed)
    model = CharLSTM(len(vocab), args.embed, args.hidden, unrolled=args.unrolled)
    model.summary()
    step = nn.train_step(model, sequence_loss, nn.Adam(args.lr))
    evaluate = graphc.jit(lambda m, x, y: sequence_loss(m(x), y))
    opt_state = step.init(model)
    rng = np.random.default_rng(args.seed)
    vx, vy = windows(val_ids, args.seq, 4 * args.batch, np.random.default_rng(12345))

    xb, yb = windows(train_ids, args.seq, args.batch, rng)
    t0 = time.perf_counter()
    step(model, opt_state, xb, yb)  # traces and compiles; the result is discarded
    compile_s = time.perf_counter() - t0
    low = step.lower(model, opt_state, xb, yb)
    loops = sum(n.op == "scan" for n in low.traced.equations)
    print(
        f"train step: {len(low.traced.equations)} traced equations ({loops} scan), "
        f"compiled in {compile_s:.1f} s"
    )

    print(
        f"loss at the start: {float(evaluate(model, vx, vy)):.3f} (uniform guess: "
        f"{np.log(len(vocab)):.3f})"
    )
    step_times, val = [], float("nan")
    for epoch in range(1, args.epochs + 1):
        losses = []
        for _ in range(args.steps):
            xb, yb = windows(train_ids, args.seq, args.batch, rng)
            t = time.perf_counter()
            model, opt_state, loss = step(model, opt_state, xb, yb)
            step_times.append(time.perf_counter() - t)
            losses.append(float(loss))
        val = float(evaluate(model, vx, vy))
        print(f"epoch {epoch:3d}  train loss {np.mean(losses):.3f}  validation loss {val:.3f}")
    print(
        f"step time: {1e3 * np.median(step_times):.1f} ms median over {len(step_times)} steps "
        f"(batch {args.batch}, {args.seq} characters)"
    )
    if args.sample > 0:
        print("\nsample:\n" + sample(model, vocab, args.prompt, args.sample, args.temperature, 0))
    return val


if __name__ == "__main__":
    main()
