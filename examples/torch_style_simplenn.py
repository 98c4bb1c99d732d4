"""The article's final script, SimpleNN, written for PyTorch: a two-layer network trained with
Adam through a DataLoader, evaluated under no_grad, saved and loaded back. The article ends
wishing to swap `import torch` for one's own library and keep the rest; here only the imports
differ:

    import torch                                     import graphc.torch as torch
    import torch.nn as nn                            import graphc.torch.nn as nn
    import torch.optim as optim                      import graphc.torch.optim as optim
    from torch.utils.data import DataLoader, ...     from graphc.torch.utils.data import ...

    python examples/torch_style_simplenn.py [saved-model-path]
"""

import os
import sys
import tempfile

from sklearn.datasets import load_digits

import graphc.torch as torch
import graphc.torch.nn as nn
import graphc.torch.optim as optim
from graphc.torch.utils.data import DataLoader, TensorDataset


class SimpleNN(nn.Module):
    def __init__(self, input_size, hidden_size, num_classes):
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        out = self.fc1(x)
        out = self.relu(out)
        out = self.fc2(out)
        return out


def main(path=None, num_epochs=10):
    torch.manual_seed(42)
    input_size, hidden_size, num_classes = 64, 64, 10
    batch_size, learning_rate = 32, 0.001

    digits = load_digits()
    X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    n_train = int(0.8 * len(X))
    train_dataset = TensorDataset(X[:n_train], y[:n_train])
    test_dataset = TensorDataset(X[n_train:], y[n_train:])
    train_loader = DataLoader(train_dataset, batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(test_dataset, batch_size=batch_size, shuffle=False)

    model = SimpleNN(input_size, hidden_size, num_classes)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=learning_rate)

    total_step = len(train_loader)
    for epoch in range(num_epochs):
        for i, (inputs, labels) in enumerate(train_loader):
            outputs = model(inputs)
            loss = criterion(outputs, labels)

            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            if (i + 1) % 15 == 0:
                print(
                    f"Epoch [{epoch + 1}/{num_epochs}], Step [{i + 1}/{total_step}], "
                    f"Loss: {loss.item():.4f}"
                )

    model.eval()
    with torch.no_grad():
        correct = 0
        total = 0
        for inputs, labels in test_loader:
            outputs = model(inputs)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    accuracy = 100 * correct / total
    print(f"Accuracy of the model on the test set: {accuracy:.2f}%")

    path = path or os.path.join(tempfile.gettempdir(), "simple_nn.pth")
    torch.save(model.state_dict(), path)
    restored = SimpleNN(input_size, hidden_size, num_classes)
    restored.load_state_dict(torch.load(path))
    restored.eval()
    with torch.no_grad():
        same = torch.equal(restored(X[n_train:]), model(X[n_train:]))
    print(f"saved to {path}; the reloaded model gives the same outputs: {same}")
    return accuracy


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
