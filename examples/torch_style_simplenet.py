"""The article's SimpleNet, a PyTorch program: Linear + ReLU + cross-entropy + SGD on
scikit-learn's 8x8 handwritten digits. Only the imports differ from PyTorch:

    import torch                              import graphc.torch as torch
    import torch.nn as nn                     import graphc.torch.nn as nn
    import torch.optim as optim               from graphc.torch import optim

Each training step (forward, backward, update) is recorded and run as one compiled
executable; from the second step on, the executable compiled for the first is reused.

    python examples/torch_style_simplenet.py [epochs]
"""

import sys

from sklearn.datasets import load_digits

import graphc.torch as torch
import graphc.torch.nn as nn
from graphc.torch import optim


class SimpleNet(nn.Module):
    def __init__(self, n_in, n_hidden, n_out):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(n_hidden, n_out)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def main(epochs=20):
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(x))
    train, test = perm[:1437], perm[1437:]
    x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]

    model = SimpleNet(64, 128, 10)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.1)

    batch = 64
    for epoch in range(epochs):
        order = torch.randperm(len(x_train))
        total = 0.0
        for i in range(0, len(x_train) - batch + 1, batch):
            idx = order[i : i + batch]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
        print(
            f"epoch {epoch + 1:2d}  loss {total / (len(x_train) // batch):.4f}  "
            f"test accuracy {accuracy:.3f}"
        )
    return accuracy


if __name__ == "__main__":
    acc = main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    print(f"final test accuracy: {acc:.4f}")
