"""The main job of `make demo`: graphc end to end.

1. a NumPy function traced to IR, differentiated, optimized and fused into one kernel, then run
   compiled against NumPy;
2. an MLP and a small ConvNet trained on scikit-learn's handwritten digits (real data shipped
   with the package), each training step one compiled executable;
3. the forward, backward and joint pictures of the ConvNet's training step and its generated
   kernels, written to an output folder.

    python examples/demo.py [--out out/demo] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import graphc  # noqa: E402
from graphc import data, nn  # noqa: E402
from graphc import numpy as gnp  # noqa: E402
from passes import COMPILE_PIPELINE, run_pipeline  # noqa: E402


def banner(text: str) -> None:
    print(f"\n{'=' * 96}\n{text}\n{'=' * 96}", flush=True)


def median_ms(fn, repeat: int = 10) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def progress(done: int, total: int, text: str) -> None:
    if not sys.stdout.isatty():
        return
    width = 30
    filled = int(width * done / max(total, 1))
    print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {text}", end="", flush=True)


# ---------------------------------------------------------------------------------------------
# 1. one function, every stage


def gelu_loss(x, w):
    return np.sum(gnp.gelu(x) * w)


def showcase() -> None:
    banner("1. A NumPy function: traced, differentiated, fused, compiled")
    print("def gelu_loss(x, w): return np.sum(gnp.gelu(x) * w)\n")
    print("traced IR:")
    print(graphc.trace(gelu_loss, graphc.spec("f32[1024]"), graphc.spec("f32[1024]")))
    vg = graphc.value_and_grad(gelu_loss, argnums=(0, 1))
    joint = graphc.trace(vg, graphc.spec("f32[1024]"), graphc.spec("f32[1024]"))
    print("\nthe gradient graph (value and both gradients), before optimization:")
    print(joint)
    fused = run_pipeline(joint, COMPILE_PIPELINE)
    print("\nthe optimization pipeline:")
    for rec in fused.info["pipeline"]:
        print(f"  {rec.name:<9} {rec.nodes_before:>4} -> {rec.nodes_after:<4} equations")
    kernels = [n for n in fused.equations if n.op == "fused"]
    print(
        f"\nafter: {len(kernels)} fused kernel (its body is the nested graph) reading x and w "
        f"once and writing the loss and both gradients:"
    )
    print(fused)

    n = 1 << 22
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    w = rng.standard_normal(n).astype(np.float32)
    f = graphc.jit(vg)
    t = time.perf_counter()
    f(x, w)
    first = time.perf_counter() - t

    def numpy_version():
        c = np.float32(0.7978845608)
        t = np.tanh(c * (x + np.float32(0.044715) * x**3))
        gelu = 0.5 * x * (1 + t)
        dgelu = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + np.float32(0.134145) * x * x)
        return np.sum(gelu * w), w * dgelu, gelu

    t_g, t_np = median_ms(lambda: f(x, w)), median_ms(numpy_version, 3)
    print(
        f"\non 2^22 float32 elements: compiled in {first:.2f} s; graphc {t_g:.1f} ms, "
        f"NumPy {t_np:.1f} ms ({t_np / t_g:.0f}x faster)"
    )


# ---------------------------------------------------------------------------------------------
# 2. training on digits


def train(name: str, model, epochs: int, batch: int, lr: float, data_xy) -> tuple[float, dict]:
    (x, y), (xt, yt) = data_xy
    model.summary()
    step = nn.train_step(model, nn.cross_entropy, nn.Adam(lr))
    predict = graphc.jit(lambda m, x: m(x))
    opt_state = step.init(model)
    t = time.perf_counter()
    step(model, opt_state, x[:batch], y[:batch])  # trace + optimize + generate + compile
    compile_s = time.perf_counter() - t
    low = step.lower(model, opt_state, x[:batch], y[:batch])
    kernels = sum(n.op == "fused" for n in low.optimized.equations)
    print(
        f"training step: {len(low.traced.equations)} traced equations -> one executable with "
        f"{kernels} fused kernels; compiled in {compile_s:.2f} s"
    )
    times: list[float] = []
    acc = 0.0
    n_batches = len(x) // batch
    for epoch in range(1, epochs + 1):
        losses = []
        for k, (bx, by) in enumerate(data.batches(x, y, batch_size=batch, seed=epoch)):
            t = time.perf_counter()
            model, opt_state, loss = step(model, opt_state, bx, by)
            times.append(time.perf_counter() - t)
            losses.append(float(loss))
            progress(k + 1, n_batches, f"loss {np.mean(losses):.4f}")
        acc = nn.accuracy(predict(model, xt), yt)
        if sys.stdout.isatty():
            print("\r" + " " * 70 + "\r", end="")
        print(
            f"  {name} epoch {epoch:2d}/{epochs}  loss {np.mean(losses):.4f}  "
            f"test accuracy {acc:.3f}",
            flush=True,
        )
    stats = {
        "compile_s": compile_s,
        "step_us": 1e6 * float(np.median(times)),
        "steps": len(times),
        "compiles": len(step.compiles),
    }
    print(
        f"  {name}: test accuracy {acc:.3f}; median step {stats['step_us']:.0f} us over "
        f"{stats['steps']} steps (batch {batch}); compiled {stats['compiles']} time(s)"
    )
    return acc, {"model": model, "step": step, "opt_state": opt_state, **stats}


def training(quick: bool):
    digits = data.digits(test_fraction=0.2, seed=0)
    (x, y), (xt, yt) = digits
    banner(
        f"2. Training on scikit-learn's digits: {len(x)} training and {len(xt)} test images "
        f"of 8x8 pixels"
    )
    nn.seed(0)
    mlp = nn.Chain(
        nn.Flatten(),
        nn.Dense(64, 128, act=nn.relu),
        nn.Dense(128, 64, act=nn.relu),
        nn.Dense(64, 10),
    )
    print("\nMLP")
    mlp_acc, mlp_run = train("mlp", mlp, 8 if quick else 25, 64, 3e-3, digits)
    cnn = nn.Chain(
        nn.Conv2d(1, 16, 3, padding=1, act=nn.relu),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, act=nn.relu),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(32 * 2 * 2, 10),
    )
    print("\nConvNet")
    cnn_acc, cnn_run = train("convnet", cnn, 5 if quick else 12, 32, 3e-3, digits)
    return mlp_acc, cnn_acc, cnn_run, digits


# ---------------------------------------------------------------------------------------------
# 3. pictures and kernels


def pictures(out: str, cnn_run: dict, digits) -> None:
    banner(f"3. The ConvNet's training step, pictured and generated, in {out}/")
    os.makedirs(out, exist_ok=True)
    (x, y), _ = digits
    xb, yb = x[:32], y[:32]
    model = cnn_run["model"]

    def loss(m):
        return nn.cross_entropy(m(xb), yb)

    written = []
    try:
        from graphc import stages, viz

        for stage in ("forward", "backward", "joint"):
            path = os.path.join(out, f"convnet_step_{stage}.svg")
            viz.render(loss, path, model, stage=stage)
            written.append(path)
        path = os.path.join(out, "convnet_step_fused.svg")
        viz.render(loss, path, model, stage="fused")
        written.append(path)
    except graphc.GraphcError as e:  # no Graphviz `dot`: say so, keep going
        print(f"  pictures skipped: {e}")
        for stage in ("forward", "backward", "joint"):
            path = os.path.join(out, f"convnet_step_{stage}.dot")
            with open(path, "w") as f:
                f.write(viz.to_dot(stages.build(loss, stage, model)))
            written.append(path)
    low = cnn_run["step"].lower(model, cnn_run["opt_state"], xb, yb)
    for name, text in (
        ("convnet_step_kernels.py", low.source),
        ("convnet_step_traced.ir", low.traced.pretty()),
        ("convnet_step_optimized.ir", str(low.optimized)),
    ):
        path = os.path.join(out, name)
        with open(path, "w") as f:
            f.write(text)
        written.append(path)
    for path in written:
        print(f"  wrote {path} ({os.path.getsize(path) / 1024:.1f} KiB)")
    if low.fallbacks:
        from collections import Counter

        counts = Counter(f.split(" ")[0] for f in low.fallbacks)
        print(
            "  ops running their NumPy implementation: "
            + ", ".join(f"{op} x{k}" for op, k in sorted(counts.items()))
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/demo")
    ap.add_argument("--quick", action="store_true", help="fewer epochs (for tests)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    showcase()
    mlp_acc, cnn_acc, cnn_run, digits = training(args.quick)
    pictures(args.out, cnn_run, digits)
    banner(
        f"done in {time.perf_counter() - t0:.0f} s: MLP test accuracy {mlp_acc:.3f}, "
        f"ConvNet test accuracy {cnn_acc:.3f}"
    )
    if not args.quick and min(mlp_acc, cnn_acc) < 0.95:
        sys.exit("accuracy below 95%")


if __name__ == "__main__":
    main()
