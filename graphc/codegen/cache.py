"""The kernel cache: where compiled modules live on disk, what they are named, and loading them.

A graph's module and each distinct kernel's module are files in the cache folder, named by a hash
of their text and of the code generator itself (`salt`), so a changed generator never loads an
old entry. Numba's `cache=True` keeps machine code beside each file, which lets a new process
skip LLVM. Loading is all or nothing (`loading`): a module is registered only once its body has
run, and a compile that fails or is interrupted forgets every kernel and module it registered.
A folder that cannot be written is warned about once (`CacheWarning`); modules are then compiled
in memory.

Example:
    >>> with loading():
    ...     folder = disk_dir()
    ...     mod, folder = load_module(module_name(source), source, folder)
"""

from __future__ import annotations

import hashlib
import importlib.util
import linecache
import os
import py_compile
import re
import sys
import tempfile
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from graphc.ir import GraphcError
from graphc.version import __version__

if TYPE_CHECKING:
    from graphc.codegen.kernels import Kernel

# cache directory


def cache_path() -> str:
    """Where the disk cache lives: $GRAPHC_CACHE_DIR, else $XDG_CACHE_HOME/graphc, else
    ~/.cache/graphc (not created, not checked).

    Example:
        >>> os.environ["GRAPHC_CACHE_DIR"] = "/tmp/kernels"; cache_path()
        '/tmp/kernels'
    """
    return os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "graphc",
    )


def cache_dir() -> str:
    """The disk cache's folder, created when missing.

    Raises GraphcError saying why when it cannot be a folder (a path under a regular file, no
    permission to create it). Compiling never raises for that: it runs without the disk cache.

    Example:
        >>> cache_dir()
        '/home/me/.cache/graphc'
    """
    d = cache_path()
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise GraphcError(f"cache directory {d} cannot be used: {os_error_reason(e)}") from None
    if not os.path.isdir(d):
        raise GraphcError(f"cache directory {d} cannot be used: it is not a folder")
    return d


class CacheWarning(UserWarning):
    """The disk cache cannot be used: graphc compiles in memory for the rest of the process."""


def os_error_reason(e: OSError) -> str:
    """The reason a cache path failed, in words: which file is in the way, or the OS's message
    with the path it concerns."""
    if isinstance(e, (NotADirectoryError, FileExistsError)) and e.filename:
        p = os.path.abspath(os.fsdecode(e.filename))
        while not os.path.lexists(p) and os.path.dirname(p) != p:
            p = os.path.dirname(p)
        if os.path.lexists(p) and not os.path.isdir(p):
            return f"{p} is a file, not a folder"
    text = e.strerror or str(e) or type(e).__name__
    return f"{text}: {e.filename}" if e.filename else text


# cache folder -> why compiled modules cannot be kept there; such a folder is warned about once
# and then left alone for the rest of the process
_UNUSABLE: dict[str, str] = {}
_USABLE: set[str] = set()


def disk_dir() -> str | None:
    """The cache folder when modules can be written there, else None (after one warning).

    Usability is proven by writing a file, not by asking os.access: permission bits say nothing
    for root, a read-only mount or a full disk."""
    d = os.path.abspath(cache_path())
    if d in _USABLE:
        if os.path.isdir(d):
            return d
        _USABLE.discard(d)  # removed while this process ran: made again below
    if d in _UNUSABLE:
        return None
    try:
        os.makedirs(d, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".graphc-probe-", dir=d)
        try:
            os.write(fd, b"graphc")
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as e:
        _give_up_disk(d, os_error_reason(e))
        return None
    _USABLE.add(d)
    return d


def _give_up_disk(d: str, reason: str) -> None:
    if d in _UNUSABLE:
        return
    _USABLE.discard(d)
    _UNUSABLE[d] = reason
    warnings.warn(
        f"graphc cannot use the compile cache {d} ({reason}); compiling in memory instead for "
        "the rest of this process (nothing is kept for later processes). Set GRAPHC_CACHE_DIR "
        "to a writable folder to keep compiled code.",
        CacheWarning,
        stacklevel=_user_stacklevel(),
    )


def _user_stacklevel() -> int:
    """The stack level of the first caller outside graphc, so a warning names the user's line."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    inner = (pkg + os.sep, os.path.join(os.path.dirname(pkg), "passes") + os.sep)
    f = sys._getframe(1)  # the function that warns: level 1
    level = 1
    while f is not None and f.f_code.co_filename.startswith(inner):
        f = f.f_back
        level += 1
    return level if f is not None else 1


def _codegen_salt() -> str:
    """Changes whenever the code generator changes, so old cache entries are not reused."""
    h = hashlib.sha256(__version__.encode())
    here = os.path.dirname(os.path.abspath(__file__))
    for f in sorted(os.listdir(here)):
        if f.endswith(".py"):
            with open(os.path.join(here, f), "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()[:12]


_SALT: str | None = None


def salt() -> str:
    """The hash of graphc's version and every file of the code generator (computed once per
    process): part of every cache entry's name, so entries written by another generator, whose
    text or machine code may differ, are never loaded.

    Example:
        >>> len(salt())
        12
    """
    global _SALT
    if _SALT is None:
        _SALT = _codegen_salt()
    return _SALT


def module_name(source: str) -> str:
    """The name of a graph's module in the cache: a hash of its text and of the generator.

    Example:
        >>> module_name(generate(graph)[0])
        'graphc_0b6c2e41f3a9d8e57c12'
    """
    return "graphc_" + hashlib.sha256((source + salt()).encode()).hexdigest()[:20]


# Kernels by the hash of everything their machine code depends on: a kernel met again in another
# graph of this process (the same step for a new batch size, whose loops take the batch as a
# bound) reuses the compiled one instead of compiling or loading it again.
_KERNELS: dict[str, Any] = {}
_kernels_lock = threading.Lock()


def njit_options(k: Kernel) -> str:
    """The njit options of kernel k. No fast-math: recomputing a value anywhere must give the
    same bits (derivative rules compare `x == max(x)`); accumulations reassociate on their own
    instructions (`accum`)."""
    return "cache=True, nogil=True, error_model='numpy', fastmath=False"


def loop_options() -> str:
    """The njit options of loop functions (`loops`): those of kernels, whose floating-point
    rules they share. They live in the graph's module, so Numba's cache keeps them beside it."""
    return "cache=True, nogil=True, error_model='numpy', fastmath=False"


def _code(k: Kernel) -> str:
    """The kernel's body without its name and IR comments: what its machine code depends on."""
    lines = k.source.split("\n")[1:]
    return "\n".join(ln for ln in lines if not ln.lstrip().startswith("#"))


def _used_consts(code: str, const_defs: dict[str, str]) -> str:
    used = sorted(set(re.findall(r"\b_c\w+", code)) & set(const_defs))
    return "".join(f"{n} = {const_defs[n]}\n" for n in used)


def kernel_key(k: Kernel, const_defs: dict[str, str]) -> str:
    code = _code(k)
    text = "\n".join([k.signature, njit_options(k), _used_consts(code, const_defs), code])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


_KERNEL_HEADER = '''"""A graphc kernel, shared by all graphs with a kernel of this code."""
import math

import numpy as np
# numba.njit; its cache=True keeps machine code beside this module when it is a cache file
from graphc.codegen.runtime import njit
from numba import types as _nb
from numba import uint64 as _ix

from graphc.codegen.accum import acc_add as _acc_add, acc_mul as _acc_mul
{imports}

def _ro(t):
    return _nb.Array(t, 1, "C", readonly=True)


def _rw(t):
    return _nb.Array(t, 1, "C")

'''


def _kernel_module(k: Kernel, const_defs: dict[str, str], imports: set[str]) -> str:
    """A module holding just kernel k, as `kernel`: its text depends only on what the kernel's
    key does (no IR comments, no graph), so every graph can load the same file."""
    code = _code(k)
    math_fns = sorted(f for f in imports if re.search(rf"\b{f}\b", code))
    imp = f"from graphc.codegen.mathlib import {', '.join(math_fns)}\n" if math_fns else ""
    head = k.source.split("\n", 1)[0]
    params = head[head.index("(") :]
    return (
        _KERNEL_HEADER.format(imports=imp)
        + _used_consts(code, const_defs)
        + f"\n@njit({k.signature}, {njit_options(k)})\ndef kernel{params}\n{code}\n"
    )


def load_kernels(
    kernels: list[Kernel],
    keys: dict[str, str],
    const_defs: dict[str, str],
    imports: set[str],
    folder: str | None,
) -> str | None:
    """Make every kernel of a graph available under its key (`keys`: kernel name -> key): from
    this process, else from its module in the cache folder (whose Numba cache a new process
    loads instead of running LLVM), written when missing. `const_defs` and `imports` are the
    graph module's constants and math imports, of which each kernel module keeps what it uses.
    Returns the folder, None once it proved unusable. Call inside `loading()`."""
    with _kernels_lock:
        for k in kernels:
            key = keys[k.name]
            if key in _KERNELS:
                continue
            name = "graphc_kernel_" + hashlib.sha256((key + salt()).encode()).hexdigest()[:20]
            source = _kernel_module(k, const_defs, imports)
            mod, folder = load_module(name, source, folder)
            _KERNELS[key] = mod.kernel
    return folder


def njit(signature: Any, **options: Any) -> Callable:
    """`numba.njit(signature, **options)`, with `cache` honoured only for a module that is a
    file: one compiled in memory (no usable cache folder) has nowhere to keep machine code."""

    def decorate(fn: Callable) -> Any:
        from numba import njit

        opts = options
        if opts.get("cache") and not os.path.isfile(fn.__code__.co_filename):
            opts = {**opts, "cache": False}
        return njit(signature, **opts)(fn)

    return decorate


def kernel(key: str, signature: Any, **options: Any) -> Callable:
    """The decorator of generated kernels: `njit(signature, **options)`, or the kernel already
    compiled in this process under the same key."""

    def decorate(fn: Callable) -> Any:
        with _kernels_lock:
            k = _KERNELS.get(key)
            if k is None:
                k = _KERNELS[key] = njit(signature, **options)(fn)
        return k

    return decorate


# Modules this process loaded completely, by name. Only these are reused: a module that failed
# or was interrupted half-way is never registered (and leaves sys.modules as it was).
_MODULES: dict[str, Any] = {}
_import_lock = threading.Lock()


@contextmanager
def loading() -> Iterator[None]:
    """One compile's loads, all or nothing, one compile at a time: when the body fails or is
    interrupted (Ctrl-C), every kernel and module it registered is forgotten again.

    Example:
        >>> with loading():
        ...     mod, folder = load_module(name, source, disk_dir())
    """
    with _import_lock:
        mark = len(_KERNELS), len(_MODULES)
        try:
            yield
        except BaseException:
            _rollback(*mark)
            raise


def _rollback(n_kernels: int, n_modules: int) -> None:
    """Forget the kernels and modules registered after the first n_kernels / n_modules (both
    registries only grow, in insertion order, under _import_lock)."""
    for key in list(_KERNELS)[n_kernels:]:
        del _KERNELS[key]
    for name in list(_MODULES)[n_modules:]:
        mod = _MODULES.pop(name)
        if sys.modules.get(name) is mod:
            del sys.modules[name]


def _write_atomic(path: str, text: str) -> None:
    """Write `text` to `path` so that no reader, in any process, ever sees part of it: into a
    temporary file in the same folder, then renamed over `path`."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def load_module(name: str, source: str, folder: str | None) -> tuple[Any, str | None]:
    """The module `name` with text `source`, and the folder it lives in (None: in memory).

    From this process when loaded before; else from the cache folder, (re)writing the file when
    missing, stale or unreadable, and discarding every file of the entry once if importing it
    fails (corrupt bytecode or Numba cache files); else, when the folder cannot be written,
    compiled in memory."""
    mod = _MODULES.get(name)
    if mod is not None:
        # compiled earlier in this process, perhaps while GRAPHC_CACHE_DIR named another folder:
        # the kernels are reused, and this folder gets the source it is promised
        if folder is not None:
            path = os.path.join(folder, name + ".py")
            try:
                if not os.path.exists(path):
                    _write_atomic(path, source)
            except OSError as e:
                _give_up_disk(folder, os_error_reason(e))
                folder = None
        return mod, folder
    if folder is not None:
        path = os.path.join(folder, name + ".py")
        try:
            return _load_from_disk(name, path, source), folder
        except OSError as e:
            _give_up_disk(folder, os_error_reason(e))
    return _load_in_memory(name, source), None


def _load_from_disk(name: str, path: str, source: str) -> Any:
    for attempt in range(2):
        try:
            with open(path, "rb") as f:
                ok = f.read() == source.encode("utf-8")
        except OSError:
            ok = False
        if not ok:
            _purge(path)  # whatever bytecode and machine code belonged to the old text
            _write_atomic(path, source)
        _ensure_bytecode(path, source)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        try:
            _exec(name, mod, lambda m: spec.loader.exec_module(m))  # type: ignore[union-attr]
            return mod
        except Exception:
            if attempt:
                raise
            # corrupt bytecode or Numba cache files: discard the entry, build it again
            _purge(path)
    raise GraphcError("unreachable")


def _load_in_memory(name: str, source: str) -> Any:
    filename = f"<graphc in memory: {name}>"
    # tracebacks and Numba's error messages quote source lines through linecache
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    mod = types.ModuleType(name)
    mod.__file__ = filename
    code = compile(source, filename, "exec")
    _exec(name, mod, lambda m: exec(code, m.__dict__))
    return mod


def _exec(name: str, mod: Any, run: Callable[[Any], None]) -> None:
    """Run a module's body with the module in sys.modules (Numba re-imports the defining module
    when it loads a cached kernel); registered only when the body completes, and sys.modules is
    restored whatever stops it, Ctrl-C included."""
    previous = sys.modules.get(name)
    sys.modules[name] = mod
    try:
        run(mod)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    _MODULES[name] = mod


def _ensure_bytecode(path: str, source: str) -> None:
    """Keep the module's compiled bytecode beside it, as part of the cache: Python would not
    write it under PYTHONDONTWRITEBYTECODE, and compiling a driver's source on every start
    costs more than loading its kernels. The bytecode records a hash of its source, checked
    here and again by the import, so bytecode that is unreadable or belongs to other text is
    replaced, never run."""
    cfile = importlib.util.cache_from_source(path)
    if not _bytecode_matches(cfile, source.encode("utf-8")):
        py_compile.compile(
            path,
            cfile=cfile,
            doraise=False,
            quiet=2,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )


def _bytecode_matches(cfile: str, source: bytes) -> bool:
    """Whether `cfile` starts with the header of checked, hash-based bytecode for `source`."""
    try:
        with open(cfile, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    checked_hash_flags = (0b11).to_bytes(4, "little")
    return (
        len(head) == 16
        and head[:4] == importlib.util.MAGIC_NUMBER
        and head[4:8] == checked_hash_flags
        and head[8:] == importlib.util.source_hash(source)
    )


def _purge(path: str) -> None:
    """Remove a cache entry and Numba's cache files for it."""
    base = os.path.splitext(os.path.basename(path))[0]
    try:
        os.remove(path)
    except OSError:
        pass
    pyc = os.path.join(os.path.dirname(path), "__pycache__")
    try:
        names = os.listdir(pyc)
    except OSError:
        return
    for f in names:
        if f.startswith(base + "."):
            try:
                os.remove(os.path.join(pyc, f))
            except OSError:
                pass
