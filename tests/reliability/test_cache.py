"""The kernel cache under faults: interrupted compiles, corrupt or unreadable cache files,
unusable cache folders and several processes compiling at once.

Each compile here uses a function no other test compiles (a constant of its own), so its kernels
are not already loaded in this process and the disk cache is really exercised. "A new process"
is simulated in-process by forgetting what a compile registered (`_forget`), and checked for real
with subprocesses where it matters.
"""

import errno
import glob
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import graphc
import graphc.codegen as cg
from graphc.codegen import cache as cc
from graphc.codegen import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_counter = iter(range(1, 1_000_000))


def _fresh_fn(kernels: int = 2):
    """A function whose kernels this process has never compiled (a constant of its own): one
    elementwise kernel, or two with a matrix product between them."""
    c = 1.0 + next(_counter) / 1024

    def one(x, y):
        return np.tanh(x * c) * y + c

    def two(x, y):
        return np.sin((np.cos(x * c) @ y.T) * c)

    return one if kernels == 1 else two


def _check(f, jitted=None):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5))
    y = rng.standard_normal((3, 5))
    got = (jitted or graphc.jit(f))(x, y)
    np.testing.assert_allclose(got, f(x, y), rtol=1e-12, atol=1e-12)


def _state():
    return (
        list(cc._KERNELS),
        list(cc._MODULES),
        sorted(m for m in sys.modules if m.startswith("graphc_")),
    )


def _mark():
    return len(cc._KERNELS), len(cc._MODULES)


def _forget(mark):
    """Drop what this process loaded since `mark`, as if the next compile ran in a new process."""
    with cc._import_lock:
        cc._rollback(*mark)


def _files(folder, pattern="*"):
    return sorted(
        glob.glob(os.path.join(folder, pattern))
        + glob.glob(os.path.join(folder, "__pycache__", pattern))
    )


class _Fault(BaseException):
    pass


def _fail_on_call(monkeypatch, obj, attr, exc, nth=1):
    """Make obj.attr raise `exc` on its nth call (and only then)."""
    orig = getattr(obj, attr)
    calls = [0]

    def wrapper(*a, **k):
        calls[0] += 1
        if calls[0] == nth:
            raise exc
        return orig(*a, **k)

    monkeypatch.setattr(obj, attr, wrapper)
    return calls


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(d))
    return str(d)


# -- an interrupted or failing compile leaves the process as it was ---------------------------

import py_compile  # noqa: E402

import numba  # noqa: E402

# every stage of a compile and load: writing a module, its bytecode, importing it, Numba
# compiling or loading a kernel (first and a later one), the graph module's kernel decorator
_STAGES = [
    (cc, "_write_atomic", 1),
    (cc, "_write_atomic", 2),
    (py_compile, "compile", 1),
    (cc, "_exec", 1),
    (cc, "_exec", 2),
    (numba, "njit", 1),
    (numba, "njit", 2),
    (runtime, "kernel", 1),
    (cc, "_purge", 1),
    (cc, "disk_dir", 1),
]


# Ctrl-C at every stage; other exceptions where they take another path (an import failure is
# retried once, an OSError while writing means compiling in memory)
_STOPS = [(stage, KeyboardInterrupt) for stage in _STAGES] + [
    (stage, exc)
    for stage in (_STAGES[0], _STAGES[3], _STAGES[6], _STAGES[9])
    for exc in (RuntimeError, OSError)
]


@pytest.mark.parametrize(
    "stage,exc",
    _STOPS,
    ids=lambda v: v.__name__ if isinstance(v, type) else f"{v[0].__name__}.{v[1]}#{v[2]}",
)
def test_a_compile_stopped_at_any_stage_leaves_the_process_as_it_was(
    cache, monkeypatch, stage, exc
):
    obj, attr, nth = stage
    f = _fresh_fn()
    before = _state()
    calls = _fail_on_call(monkeypatch, obj, attr, exc("stopped"), nth)
    try:
        _check(f)
    except (KeyboardInterrupt, RuntimeError, OSError) as e:
        assert "stopped" in str(e)
        # nothing of the failed compile is left: no module half imported, no kernel registered
        assert _state() == before
    else:
        # some faults are recovered from on the spot (a failed import is retried once, a cache
        # file that cannot be written means compiling in memory): the answer is still right;
        # Ctrl-C always stops the compile
        assert exc is not KeyboardInterrupt, f"the compile never reached {attr} #{nth}"
    assert calls[0] >= nth
    monkeypatch.undo()
    monkeypatch.setenv("GRAPHC_CACHE_DIR", cache)
    assert not glob.glob(os.path.join(cache, "*.tmp"))
    _check(f)  # the same function compiles now
    _check(_fresh_fn())  # and so does a new one


def test_ctrl_c_while_the_module_body_runs_leaves_no_half_imported_module(cache, monkeypatch):
    # the reported failure: Ctrl-C inside the generated module's import, then every later call
    # failed with "module 'graphc_kernel_…' has no attribute 'kernel'"
    import importlib.machinery

    f = _fresh_fn()
    before = _state()
    _fail_on_call(
        monkeypatch, importlib.machinery.SourceFileLoader, "exec_module", KeyboardInterrupt(), 1
    )
    with pytest.raises(KeyboardInterrupt):
        _check(f)
    assert _state() == before
    monkeypatch.undo()
    monkeypatch.setenv("GRAPHC_CACHE_DIR", cache)
    _check(f)
    _check(_fresh_fn())


def test_an_interrupted_compile_of_a_jitted_function_can_be_called_again(cache, monkeypatch):
    f = _fresh_fn()
    jf = graphc.jit(f)
    _fail_on_call(monkeypatch, numba, "njit", KeyboardInterrupt(), 1)
    with pytest.raises(KeyboardInterrupt):
        _check(f, jf)
    monkeypatch.undo()
    monkeypatch.setenv("GRAPHC_CACHE_DIR", cache)
    _check(f, jf)  # the same Jitted object: its signature cache kept nothing broken


# -- corrupt, truncated, unreadable cache files are discarded and rebuilt ---------------------


def _garbage(p):
    with open(p, "wb") as fh:
        fh.write(b"\x00garbage\x00" * 7)


def _non_utf8(p):
    with open(p, "ab") as fh:
        fh.write(b"\xff\xfe\xc3(")


def _truncate(p):
    size = os.path.getsize(p)
    with open(p, "r+b") as fh:
        fh.truncate(size // 2)


def _empty(p):
    open(p, "wb").close()


def _zero_permissions(p):
    os.chmod(p, 0)


_CORRUPTIONS = [_garbage, _non_utf8, _truncate, _empty, _zero_permissions]
_KINDS = {
    "graph module": "graphc_[!k]*.py",
    "kernel module": "graphc_kernel_*.py",
    "bytecode": "graphc_*.pyc",
    "numba index": "graphc_*.nbi",
    "numba data": "graphc_*.nbc",
}


@pytest.fixture
def unreadable_when_mode_zero(monkeypatch):
    """Root reads files whatever their mode: make open() refuse a mode-0 file as the kernel
    does for everyone else, so zero-permission cache files are exercised under root too."""
    import builtins

    real_open = builtins.open

    def guarded(file, mode="r", *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)) and "r" in mode:
            try:
                zero = os.stat(file).st_mode & 0o777 == 0
            except OSError:
                zero = False
            if zero:
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", guarded)


@pytest.mark.parametrize("corrupt", _CORRUPTIONS, ids=lambda c: c.__name__.strip("_"))
@pytest.mark.parametrize("kind", list(_KINDS))
def test_a_damaged_cache_file_is_discarded_and_rebuilt(
    cache, kind, corrupt, unreadable_when_mode_zero
):
    f = _fresh_fn(kernels=1)
    mark = _mark()
    _check(f)
    files = _files(cache, _KINDS[kind])
    assert files, f"no {kind} files in the cache"
    _forget(mark)
    for p in files:
        corrupt(p)
    _check(f)  # a later process: the damaged entry is detected, discarded and rebuilt
    # and rebuilt well: the process after that loads everything from the cache
    _forget(mark)
    exes = []
    orig = graphc.api._EXECUTORS["numba"]
    try:
        graphc.api._EXECUTORS["numba"] = lambda g: exes.append(orig(g)) or exes[-1]
        _check(f)
    finally:
        graphc.api._EXECUTORS["numba"] = orig
    hits, misses = exes[0].cache_stats()
    assert misses == 0 and hits >= 1, (hits, misses)
    for p in _files(cache):
        assert os.stat(p).st_mode & 0o777, f"{p} was left unreadable"


_FRESH_PROCESS = textwrap.dedent("""
    import numpy as np, graphc
    from graphc.api import _EXECUTORS
    exes = []
    orig = _EXECUTORS["numba"]
    _EXECUTORS["numba"] = lambda g: exes.append(orig(g)) or exes[-1]
    f = lambda x: np.sum(np.sin(x) * 1.0625, axis=0) - x[0]
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    err = np.abs(graphc.jit(f)(x) - f(x)).max()
    print(err, *exes[0].cache_stats())
""")


def _run_fresh(cache):
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache, PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    err, hits, misses = out.stdout.split()
    return float(err), int(hits), int(misses)


@pytest.mark.slow
def test_later_processes_recover_from_non_utf8_bytes_in_every_cache_file(tmp_path):
    cache = str(tmp_path / "cache")
    assert _run_fresh(cache)[0] < 1e-12
    files = _files(cache, "graphc_*")
    assert any(p.endswith(".py") for p in files) and any(p.endswith(".nbi") for p in files)
    for p in files:
        _non_utf8(p)
    err, _, _ = _run_fresh(cache)
    assert err < 1e-12
    err, hits, misses = _run_fresh(cache)  # the entry was rebuilt for good
    assert err < 1e-12 and hits >= 1 and misses == 0


# -- unusable cache folders: one warning, then compiling in memory ----------------------------


def _compile_twice_expect_one_warning(fn_count=2):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(fn_count):
            f = _fresh_fn()
            _check(f)
            assert graphc.jit(f).lower(np.ones((3, 5)), np.ones((3, 5))).path is None
    ours = [w for w in caught if issubclass(w.category, cg.CacheWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert ours[0].filename == __file__  # it names the user's line, not graphc's
    return str(ours[0].message)


def test_cache_dir_under_a_regular_file_compiles_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(blocker / "cache"))
    msg = _compile_twice_expect_one_warning()
    assert f"{blocker} is a file, not a folder" in msg and "in memory" in msg


def test_cache_dir_that_is_a_regular_file_compiles_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "cachefile"
    blocker.write_text("x")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(blocker))
    msg = _compile_twice_expect_one_warning()
    assert f"{blocker} is a file, not a folder" in msg
    assert blocker.read_text() == "x"


def test_read_only_cache_dir_compiles_in_memory(tmp_path, monkeypatch):
    d = tmp_path / "ro"
    d.mkdir()
    os.chmod(d, 0o555)
    if os.geteuid() == 0:
        # root writes into a mode-555 folder anyway: refuse file creation there the way the
        # kernel refuses everyone else
        real = os.open

        def refuse(path, flags, *a, **k):
            if os.path.dirname(os.path.abspath(os.fsdecode(path))) == str(d) and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real(path, flags, *a, **k)

        monkeypatch.setattr(os, "open", refuse)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(d))
    try:
        msg = _compile_twice_expect_one_warning()
    finally:
        os.chmod(d, 0o755)
    assert "Permission denied" in msg and str(d) in msg
    assert os.listdir(d) == []


def test_full_disk_while_writing_an_entry_compiles_in_memory(cache, monkeypatch):
    os.makedirs(cache)

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", dst)

    monkeypatch.setattr(os, "replace", full)
    msg = _compile_twice_expect_one_warning()
    assert "No space left on device" in msg and cache in msg
    assert not glob.glob(os.path.join(cache, "*.tmp"))


def test_full_disk_at_the_first_write_compiles_in_memory(cache, monkeypatch):
    real = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    msg = _compile_twice_expect_one_warning()
    monkeypatch.setattr(os, "write", real)
    assert "No space left on device" in msg


# -- several processes compiling the same graph at once ---------------------------------------


@pytest.mark.slow
def test_processes_compiling_the_same_graph_at_once_all_get_it_right(tmp_path):
    cache = str(tmp_path / "cache")
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache, PYTHONPATH=ROOT)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FRESH_PROCESS],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert float(out.split()[0]) < 1e-12
    assert not [f for f in _files(cache) if ".tmp" in f]  # every write was atomic
    err, hits, misses = _run_fresh(cache)
    assert err < 1e-12 and hits >= 1 and misses == 0


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "graphc_x.py")
    cc._write_atomic(path, "old = 1\n")

    class Boom(Exception):
        pass

    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):
        cc._write_atomic(path, "new = 2\n")
    monkeypatch.setattr(os, "replace", real_replace)
    with open(path) as fh:
        assert fh.read() == "old = 1\n"  # a reader sees the old text or the new, never a part
    assert os.listdir(tmp_path) == ["graphc_x.py"]  # and no temporary file is left behind


# -- the command line: every failure is one error line and a non-zero status -----------------

from graphc.cli import main  # noqa: E402

SEEDS = os.path.join(ROOT, "examples", "seeds.py")


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error(code, err, *fragments, status=1):
    assert code == status, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphc: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]


def test_cli_viz_into_a_missing_folder(capsys, tmp_path):
    out = tmp_path / "missing" / "deeper" / "poly.svg"
    code, _, err = _cli(capsys, "viz", f"{SEEDS}:poly", "-o", str(out))
    _one_error(code, err, str(out), "does not exist", status=2)
    assert not out.parent.exists()


def test_cli_viz_into_a_folder_under_a_file_or_onto_a_folder(capsys, tmp_path):
    blocker = tmp_path / "plain"
    blocker.write_text("x")
    code, _, err = _cli(capsys, "viz", f"{SEEDS}:poly", "-o", str(blocker / "p.dot"))
    _one_error(code, err, "is a file, not a folder", status=2)
    folder = tmp_path / "pic.dot"
    folder.mkdir()
    code, _, err = _cli(capsys, "viz", f"{SEEDS}:poly", "-o", str(folder))
    _one_error(code, err, "it is a folder", status=2)


def test_cli_viz_to_an_output_that_cannot_be_written(capsys, tmp_path, monkeypatch):
    import builtins

    out = tmp_path / "locked.dot"
    out.write_text("old")
    os.chmod(out, 0o444)
    real_open = builtins.open

    def refuse(file, mode="r", *a, **k):
        # root writes read-only files anyway: refuse as the kernel does for everyone else
        if os.fspath(file) == str(out) and any(c in mode for c in "wax+"):
            raise PermissionError(errno.EACCES, "Permission denied", str(out))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", refuse)
    code, _, err = _cli(capsys, "viz", f"{SEEDS}:poly", "-o", str(out))
    _one_error(code, err, f"cannot write {out}", "Permission denied")
    assert out.read_text() == "old"


def test_cli_cache_info_and_clear_when_the_cache_path_is_a_file(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "cachefile"
    blocker.write_text("x")
    for path in (blocker, blocker / "sub"):
        monkeypatch.setenv("GRAPHC_CACHE_DIR", str(path))
        for action in ("info", "clear"):
            code, out, err = _cli(capsys, "cache", action)
            _one_error(
                code,
                err,
                str(path),
                f"{blocker} is a file, not a folder"
                if path != blocker
                else "it is a file, not a folder",
            )
            assert out == ""
    assert blocker.read_text() == "x"


def test_cli_cache_clear_reports_files_it_could_not_remove(capsys, tmp_path, monkeypatch):
    d = tmp_path / "cache"
    (d / "__pycache__").mkdir(parents=True)
    for name in ("graphc_aa.py", "graphc_kernel_bb.py"):
        (d / name).write_text("x = 1\n")
    (d / "__pycache__" / "graphc_aa.cpython-311.pyc").write_bytes(b"0" * 10)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(d))
    os.chmod(d, 0o555)
    os.chmod(d / "__pycache__", 0o555)
    real_remove = os.remove

    def refuse(path, *a, **k):
        # root may delete in a mode-555 folder: refuse as the kernel does for everyone else
        if os.path.dirname(os.path.abspath(path)) in (str(d), str(d / "__pycache__")):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_remove(path, *a, **k)

    monkeypatch.setattr(os, "remove", refuse)
    try:
        code, out, err = _cli(capsys, "cache", "clear")
    finally:
        os.chmod(d, 0o755)
        os.chmod(d / "__pycache__", 0o755)
    _one_error(code, err, "could not clear", "3 of 3 files", "Permission denied", "0 removed")
    assert "removed 2 compiled" not in out
    assert sorted(os.listdir(d)) == ["__pycache__", "graphc_aa.py", "graphc_kernel_bb.py"]
    # and when only some go, it says how many
    monkeypatch.setattr(
        os,
        "remove",
        lambda p, *a, **k: refuse(p) if p.endswith(".pyc") else real_remove(p, *a, **k),
    )
    code, out, err = _cli(capsys, "cache", "clear")
    _one_error(code, err, "1 of 3 files", "2 removed")


class _FullDisk:
    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_cli_output_to_a_full_disk(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _FullDisk())
    code = main(["passes"])
    err = capsys.readouterr().err
    _one_error(code, err, "cannot write standard output", "No space left on device")


def _cli_process(args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT, **kw.pop("env", {}))
    return subprocess.Popen(
        [sys.executable, "-m", "graphc", *args],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_cli_stdout_redirected_to_a_full_device():
    with open("/dev/full", "w") as full:
        p = _cli_process(["dump", f"{SEEDS}:mlp_loss", "--stage", "grad"], stdout=full)
        _, err = p.communicate(timeout=300)
    _one_error(p.returncode, err, "No space left on device")


def test_cli_stdout_closed_before_the_output_is_written():
    # `graphc dump ... | head -1` with the reader gone before graphc writes
    p = _cli_process(["dump", f"{SEEDS}:mlp_loss", "--stage", "all"], stdout=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read()
    p.wait(timeout=300)
    _one_error(p.returncode, err, "standard output was closed")


@pytest.mark.parametrize(
    "var,value,expect",
    [
        ("GRAPHC_THREADS", "abc", "not a whole number"),
        ("GRAPHC_THREADS", "1.5", "not a whole number"),
        ("GRAPHC_THREADS", "0", "out of range"),
        ("GRAPHC_THREADS", "-2", "out of range"),
        ("GRAPHC_DEBUG", "abc", "not a whole number"),
        ("GRAPHC_DEBUG", "3", "out of range"),
        ("GRAPHC_DEBUG", "-1", "out of range"),
    ],
)
def test_cli_bad_environment_variables_are_named(capsys, monkeypatch, var, value, expect):
    monkeypatch.setenv(var, value)
    for argv in (["passes"], ["dump", f"{SEEDS}:poly", "--stage", "kernels"]):
        code, out, err = _cli(capsys, *argv)
        _one_error(code, err, f"{var}={value!r}", expect)
        assert out == ""


def test_library_names_a_bad_graphc_debug(monkeypatch):
    monkeypatch.setenv("GRAPHC_DEBUG", "lots")
    with pytest.raises(graphc.GraphcError, match="GRAPHC_DEBUG='lots' is not a whole number"):
        graphc.jit(lambda x: x * 2.5)(np.ones(3))


def test_library_names_a_bad_graphc_threads_in_a_new_process(tmp_path):
    script = (
        "import numpy as np, graphc\n"
        "try:\n"
        "    graphc.jit(lambda x: np.sin(x) * 3)(np.ones(3))\n"
        "except graphc.GraphcError as e:\n"
        "    print(e)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT, GRAPHC_THREADS="abc", GRAPHC_CACHE_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "GRAPHC_THREADS='abc' is not a whole number" in out.stdout


def test_cli_with_an_unusable_cache_folder_warns_once_and_works(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(blocker / "cache"))
    code, out, err = _cli(capsys, "dump", f"{SEEDS}:poly", "--stage", "kernels")
    assert code == 0 and "def run(args, bufs):" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphc: warning: "), err
    assert f"{blocker} is a file, not a folder" in lines[0]


def test_cli_ctrl_c_is_one_line(capsys, monkeypatch):
    import graphc.cli as cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "Target", interrupted)
    code, _, err = _cli(capsys, "dump", f"{SEEDS}:poly")
    _one_error(code, err, "interrupted", status=130)


# -- pictures: the backward picture says what its inputs are ----------------------------------

import re  # noqa: E402

from graphc import viz  # noqa: E402


def _abs_loss(W, b, x, y_true):
    return np.sum(np.abs(x @ W + b - y_true))


def _two_outputs(a, b):
    return np.tanh(a) * b, np.sum(np.exp(2.0 * a) * b)


def _mlp_loss(x, y, W1, b1, W2, b2):
    h = 1 / (1 + np.exp(-(x @ W1 + b1)))
    return np.sum((h @ W2 + b2 - y) ** 2)


_PICTURE_CASES = {
    "abs_loss": (_abs_loss, (np.ones((3, 2)), np.ones(2), np.ones((4, 3)), np.ones((4, 2)))),
    "two_outputs": (_two_outputs, (np.ones((2, 3)), np.ones((2, 3)))),
    "mlp_loss": (
        _mlp_loss,
        (
            np.ones((5, 4)),
            np.ones((5, 2)),
            np.ones((4, 3)),
            np.ones(3),
            np.ones((3, 2)),
            np.ones(2),
        ),
    ),
}


def _items(dot, shape):
    """(dot id, tooltip) of every drawn item of a Graphviz shape."""
    out = []
    for line in dot.splitlines():
        m = re.match(r'\s*(\w+) \[.*shape=(\w+).*tooltip="([^"]*)"', line)
        if m and m.group(2) == shape:
            out.append((m.group(1), m.group(3)))
    return out


def _type(a):
    return f"f64{list(np.shape(a))}".replace(" ", "")


def _params(fn):
    import inspect

    return list(inspect.signature(fn).parameters)


@pytest.mark.parametrize("case", list(_PICTURE_CASES))
def test_backward_picture_titles_residuals_and_cotangents_as_what_they_are(case):
    fn, args = _PICTURE_CASES[case]
    names = _params(fn)
    types = {
        n: f"f64{list(np.shape(a))}".replace(" ", "") for n, a in zip(names, args, strict=True)
    }
    outs = fn(*args)
    outs = outs if isinstance(outs, tuple) else (outs,)
    fwd_dot = viz.to_dot(viz.apply_stage(fn, "forward", *args), input_names=names)
    forward_nodes = dict(_items(fwd_dot, "box"))  # IR name -> "h: f64[4,2] = sign  # ..."
    forward_outputs = [tip for _, tip in _items(fwd_dot, "house")]
    dot = viz.to_dot(viz.apply_stage(fn, "backward", *args), input_names=names)
    inputs = [tip for _, tip in _items(dot, "invhouse")]
    assert inputs
    n_ct = 0
    for tip in inputs:
        # "a: residual x: f64[4,3]", "c: residual j = sign(g): f64[4,2]", "d: ct(loss): f64[]"
        m = re.fullmatch(r"\w+: (.*): (\w+\[[\d,]*\])", tip)
        assert m, tip
        what, typ = m.groups()
        if what.startswith("ct("):
            n_ct += 1
            out = 0 if len(outs) == 1 else int(re.fullmatch(r"ct\(out (\d+)\)", what).group(1))
            if len(outs) == 1:
                assert what == f"ct({fn.__name__})"
            assert typ == _type(outs[out])
            continue
        assert what.startswith("residual "), f"{tip}: not titled as a residual or cotangent"
        ref = what[len("residual ") :]
        # the forward picture's output for this residual carries the same name and type
        assert f"residual {ref.split(' = ')[0]}: {typ}" in forward_outputs, (tip, forward_outputs)
        if ref in types:  # a saved parameter, with that parameter's type
            assert typ == types[ref], tip
        else:  # a forward value, by its name in the forward picture, and how it was computed
            m = re.fullmatch(r"(\w+) = (\w+)\(.*\)", ref)
            assert m, tip
            name, op = m.groups()
            assert forward_nodes[name].startswith(f"{name}: {typ} = {op}"), (tip, forward_nodes)
    assert n_ct == len(outs)
    grads = sorted(tip for _, tip in _items(dot, "house"))
    assert grads == sorted(f"grad {n}: {types[n]}" for n in names)


@pytest.mark.parametrize("case", list(_PICTURE_CASES))
def test_backward_picture_params_draws_only_those_gradients(case):
    fn, args = _PICTURE_CASES[case]
    names = _params(fn)
    bwd = viz.apply_stage(fn, "backward", *args)
    full = viz.to_dot(bwd, input_names=names)
    for chosen in ([0], [len(names) - 1], [0, len(names) - 1]):
        dot = viz.to_dot(bwd, input_names=names, params=chosen)
        grads = sorted(tip.split(":")[0] for _, tip in _items(dot, "house"))
        assert grads == sorted(f"grad {names[k]}" for k in set(chosen))
        assert len(_items(dot, "box")) <= len(_items(full, "box"))
        # the inputs drawn are those the chosen gradients read, titled as in the full picture
        assert {t.split(": ", 1)[1] for _, t in _items(dot, "invhouse")} <= {
            t.split(": ", 1)[1] for _, t in _items(full, "invhouse")
        }
    with pytest.raises(graphc.GraphcError, match=r"no gradient for input 99.*gradients for"):
        viz.to_dot(bwd, input_names=names, params=[99])


def test_params_restricts_the_backward_picture_written_by_render(tmp_path):
    fn, args = _PICTURE_CASES["abs_loss"]
    out = viz.render(fn, tmp_path / "b.dot", *args, stage="backward", params=[1])
    dot = open(out).read()
    assert [t for _, t in _items(dot, "house")] == ["grad b: f64[2]"]
    # grad b needs only sign(...) and the cotangent: x and W are not drawn
    assert sorted(t.split(": ")[1] for _, t in _items(dot, "invhouse")) == [
        "ct(_abs_loss)",
        "residual j = sign(g)",
    ]


@pytest.mark.parametrize("case", list(_PICTURE_CASES))
def test_joint_and_partition_pictures_title_cotangents(case):
    from passes.partition import partition

    fn, args = _PICTURE_CASES[case]
    names = _params(fn)
    joint = viz.apply_stage(fn, "joint", *args)
    n_out = int(joint.info["n_primal_outputs"])
    want = [f"ct({fn.__name__})"] if n_out == 1 else [f"ct(out {k})" for k in range(n_out)]
    for dot in (
        viz.to_dot(joint, input_names=names),
        viz.to_dot(partition(joint), input_names=names),
    ):
        titles = [t.split(": ")[1] for _, t in _items(dot, "invhouse")]
        assert [t for t in titles if t.startswith("ct(")] == want
        assert not [t for t in titles if t.startswith("cotangent")]


def test_cli_backward_picture_labels(tmp_path):
    # `graphc viz` passes the parameter names; the backward picture must not put them on its
    # residual and cotangent inputs
    out = tmp_path / "b.dot"
    code = main(["viz", f"{SEEDS}:mlp_loss", "--stage", "backward", "-o", str(out)])
    assert code == 0
    titles = [t.split(": ")[1] for _, t in _items(out.read_text(), "invhouse")]
    assert "ct(mlp_loss)" in titles
    assert all(t.startswith(("residual ", "ct(")) for t in titles), titles


def test_a_cache_folder_removed_while_the_process_runs_is_made_again(cache):
    import shutil

    with warnings.catch_warnings():
        warnings.simplefilter("error", cg.CacheWarning)
        _check(_fresh_fn(kernels=1))
        shutil.rmtree(cache)
        f = _fresh_fn(kernels=1)
        _check(f)
        path = graphc.jit(f).lower(np.ones((3, 5)), np.ones((3, 5))).path
    assert path is not None and os.path.dirname(path) == cache and os.path.exists(path)


def test_cli_cache_info_on_an_unreadable_folder(capsys, tmp_path, monkeypatch):
    d = tmp_path / "cache"
    d.mkdir()
    (d / "graphc_aa.py").write_text("x = 1\n")
    os.chmod(d, 0o311)  # no read permission: the folder cannot be listed
    real = os.listdir

    def refuse(path="."):
        # root lists it anyway: refuse as the kernel does for everyone else
        if os.path.abspath(path) == str(d):
            raise PermissionError(errno.EACCES, "Permission denied", str(d))
        return real(path)

    monkeypatch.setattr(os, "listdir", refuse)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(d))
    try:
        for action in ("info", "clear"):
            code, out, err = _cli(capsys, "cache", action)
            _one_error(code, err, f"cannot read cache directory {d}", "Permission denied")
            assert out == ""
    finally:
        os.chmod(d, 0o755)
    assert (d / "graphc_aa.py").exists()
