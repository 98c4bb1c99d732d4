"""Taking gradients with graphc: derivatives, second derivatives, nested structures.

Run: python examples/gradients.py
"""

import numpy as np

import graphc

# A derivative: f(x) = 3x^2 + 2x + 1, f'(x) = 6x + 2
f = lambda x: 3 * x**2 + 2 * x + 1
print("f'(2)  =", graphc.gradient(f, 2.0))  # (14.0,)

# A second derivative: the gradient of the gradient
df = graphc.grad(f)
print("f''(2) =", graphc.grad(df)(2.0))  # 6.0

# Several arguments: one gradient each
gx, gy = graphc.gradient(
    lambda x, y: np.sum((x - y) ** 2), np.array([2.0, 1.0]), np.array([2.0, 0.0])
)
print("d/dx, d/dy sum((x-y)^2) =", gx, gy)

# Nested structures: the gradient mirrors the input, None where there is nothing to differentiate
nt = dict(a=np.array([2.0, 1.0]), b=np.array([2.0, 0.0]), c=np.tanh)
print("gradient of a dict   =", graphc.gradient(lambda t: np.sum((t["a"] - t["b"]) ** 2), nt))

# The value and the gradient together
print("withgradient         =", graphc.withgradient(f, 2.0))

# The article's function, and what the gradient graph looks like
g = lambda a, b: (a / b - a) * (b / a + a + b) * (a - b)
print("df/da, df/db at (230.3, 33.2) =", graphc.gradient(g, 230.3, 33.2))

from passes.autodiff import vjp  # noqa: E402

graph = graphc.trace(g, 230.3, 33.2)
print("\nthe gradient graph (outputs: f, df/da, df/db):")
print(vjp(graph, wrt=[0, 1], seed="ones"))

# A numerical check of any function's first and second derivatives
graphc.check_grads(lambda x: np.sum(np.tanh(x) ** 3), (np.array([0.1, -0.4, 2.0]),), order=2)
print("\ncheck_grads: first and second derivatives agree with finite differences")
