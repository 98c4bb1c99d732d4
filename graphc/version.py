"""graphc's version, the one the package metadata (pyproject.toml) names; the kernel cache salts
its keys with it."""

__version__ = "0.1.0"
