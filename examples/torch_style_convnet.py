"""The article's SimpleConvNet, a PyTorch program (conv -> relu -> maxpool, twice, then
flatten -> linear -> relu -> linear), trained on scikit-learn's 8x8 handwritten digits. Only
the imports differ from PyTorch:

    import torch                              import graphc.torch as torch
    import torch.nn as nn                     import graphc.torch.nn as nn
    import torch.nn.functional as F           import graphc.torch.nn.functional as F
    import torch.optim as optim               from graphc.torch import optim

The article's ConvNet did not learn; this one reaches over 95% test accuracy. Each step's
forward, backward and Adam update are one compiled executable, compiled at the first step and
found in the cache at every later one (the counts are printed at the end). With --compile the
step goes through `torch.compile`, which replays the captured executable without running the
step's Python; with --viz FILE the first batch's loss is drawn, forward and backward.

    python examples/torch_style_convnet.py [--epochs 12] [--compile] [--viz convnet.svg]
"""

import argparse
import time

from sklearn.datasets import load_digits

import graphc.torch as torch
import graphc.torch.nn as nn
import graphc.torch.nn.functional as F
from graphc.torch import optim


class SimpleConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(32 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))  # 16 x 4 x 4
        x = self.pool(F.relu(self.conv2(x)))  # 32 x 2 x 2
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--viz", default=None)
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target)
    perm = torch.randperm(len(images))
    x_train, y_train = images[perm[:1437]], labels[perm[:1437]]
    x_test, y_test = images[perm[1437:]], labels[perm[1437:]]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x_train, y_train),
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
    )

    model = SimpleConvNet()
    print(model)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=3e-3)

    def train_step(x, y):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    step = torch.compile(train_step) if args.compile else train_step
    graphc = hasattr(torch, "cache_info")  # the same file runs with PyTorch's imports
    if args.viz and graphc:
        xb, yb = next(iter(loader))
        torch.viz(criterion(model(xb), yb), args.viz)
        print(f"wrote {args.viz}")

    start = torch.cache_info() if graphc else None
    step_times, accuracy = [], 0.0
    for epoch in range(args.epochs):
        model.train()
        total, n = 0.0, 0
        for x, y in loader:
            t = time.perf_counter()
            loss = step(x, y)
            step_times.append(time.perf_counter() - t)
            total += loss.item()
            n += 1
        model.eval()
        with torch.no_grad():
            predicted = model(x_test).argmax(dim=1)
            accuracy = (predicted == y_test).float().mean().item()
        print(f"epoch {epoch + 1:2d}  loss {total / n:.4f}  test accuracy {accuracy:.3f}")

    step_times.sort()
    print(f"{len(step_times)} steps, median {1e3 * step_times[len(step_times) // 2]:.2f} ms")
    if graphc:
        info = torch.cache_info()
        print(
            f"{info.realizations - start.realizations} realizations: "
            f"{info.hits - start.hits} ran an executable compiled before, "
            f"{info.compiles - start.compiles} compiled one"
        )
        if args.compile:
            print("torch.compile:", "; ".join(step.captures))
    print(f"final test accuracy: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
