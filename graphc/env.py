"""graphc's environment variables, read in one place: a value that cannot be meant is an error
that names the variable, never a crash deep inside graphc nor a silently ignored setting.

Example:
    >>> os.environ["GRAPHC_THREADS"] = "4"; env_int("GRAPHC_THREADS", 1, minimum=1)
    4
    >>> os.environ["GRAPHC_THREADS"] = "abc"; env_int("GRAPHC_THREADS", 1, minimum=1)
    Traceback (most recent call last):
    graphc.ir.GraphcError: GRAPHC_THREADS='abc' is not a whole number (expected 1 or more)
"""

from __future__ import annotations

import os

from graphc.ir import GraphcError


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    """The integer value of environment variable `name` (`default` when unset or empty).

    Raises GraphcError naming the variable and its value when that is not a whole number in
    [minimum, maximum]."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    bounds = f"{minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
    try:
        value = int(text)
    except ValueError:
        raise GraphcError(f"{name}={text!r} is not a whole number (expected {bounds})") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise GraphcError(f"{name}={text!r} is out of range (expected {bounds})")
    return value


def debug_level() -> int:
    """GRAPHC_DEBUG: 0 (quiet), 1 (what each pass did and what each compile made) or 2 (also
    the IR after each pass).

    Example:
        >>> os.environ["GRAPHC_DEBUG"] = "1"; debug_level()
        1
    """
    return env_int("GRAPHC_DEBUG", 0, minimum=0, maximum=2)
