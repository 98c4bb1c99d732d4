"""The article's first program: a scalar function, its value and its derivatives by
`backward()`, written for PyTorch. Only the import line differs:

    import torch                      # PyTorch
    import graphc.torch as torch      # graphc

f(a, b) = (a/b - a) * (b/a + a + b) * (a - b) at (230.3, 33.2) gives df/da = -153284.83150602
and df/db = 3815.03894415. Nothing is computed until `.item()` asks: then the recorded
forward graph and the backward graph graphc's reverse-mode pass derives from it run as one
compiled executable.

    python examples/torch_style_scalars.py
"""

import graphc.torch as torch

a = torch.tensor(230.3, dtype=torch.float64, requires_grad=True)
b = torch.tensor(33.2, dtype=torch.float64, requires_grad=True)

f = (a / b - a) * (b / a + a + b) * (a - b)
f.backward()
print(f"f(a, b) = {f.item():.8f}")
print(f"df/da = {a.grad.item():.8f}")  # -153284.83150602
print(f"df/db = {b.grad.item():.8f}")  # 3815.03894415

# the same with functions of the inputs
a.grad = None
b.grad = None
g = ((a**2) / torch.sin(b) - a) * (b / a + torch.cos(a) + b) * (a - torch.exp(b))
g.backward()
print(f"dg/da = {a.grad.item():.8e}")  # -1.56674119e+19
print(f"dg/db = {b.grad.item():.8e}")  # -5.79507777e+20
