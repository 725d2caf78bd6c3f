"""Small runtime helpers both packages need: seeding, device/precision choice, run-dir files."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rationale_commons.errors import DataError, first_line


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when installed) torch, for repeatable runs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # the data layer works without torch
        return
    torch.manual_seed(seed)


def choose_device(requested: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when a GPU is visible, else ``"mps"`` on Apple silicon, else ``"cpu"``."""
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def autocast_dtype(device: str, requested: str = "auto") -> Any:
    """The dtype to autocast to: bf16 on GPUs that support it, fp16 on other GPUs, none on CPU.

    ``requested`` may force ``"fp32"``, ``"bf16"`` or ``"fp16"``. Returns ``None`` for fp32.
    """
    import torch

    if requested == "fp32":
        return None
    if requested == "bf16":
        return torch.bfloat16
    if requested == "fp16":
        return torch.float16
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def autocast(device: str, precision: str = "auto") -> Any:
    """A context that autocasts to :func:`autocast_dtype` (a no-op for fp32, e.g. on CPU)."""
    import contextlib

    import torch

    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Where a measurement ran, for benchmark JSON: CPU count, platform, torch, and the GPU by name."""
    import platform

    import torch

    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                            "device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far, in MB (``None`` where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _name_the_file(exc: BaseException, path: str | Path) -> None:
    """Give an OS error raised while writing ``path`` its file name when it has none (a failed
    ``write()``, e.g. disk full, carries none), so the one-line error says which file."""
    if isinstance(exc, OSError) and exc.filename is None:
        exc.filename = str(path)


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 2) -> None:
    """Write JSON through a temporary file and rename, so a killed run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=indent, ensure_ascii=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        _name_the_file(exc, path)
        raise


def write_jsonl_atomic(path: str | Path, rows: list[Any]) -> None:
    """Write one JSON object per line, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        _name_the_file(exc, path)
        raise


# --------------------------------------------------------------------------------------------
# Run dirs that survive kills: atomic folders, data-only loading, one process per dir
# --------------------------------------------------------------------------------------------

#: Written last into a folder saved by :func:`atomic_dir`: its presence says the folder is whole.
COMPLETE_MARKER = ".complete"
#: The lock file :func:`lock_run_dir` holds inside a run dir (not part of the run's output).
LOCK_FILE = ".lock"
#: Environment variable of the fault-injection hook (:func:`fault_point`); tests only.
FAULT_ENV = "RATIONALE_FAULT"


def fault_point(name: str) -> None:
    """Test hook: kill this process with SIGKILL when ``$RATIONALE_FAULT`` matches ``name``
    (an ``fnmatch`` pattern), so tests can stop a real run at an exact point. A no-op otherwise."""
    import fnmatch
    import signal

    pattern = os.environ.get(FAULT_ENV)
    if pattern and fnmatch.fnmatchcase(name, pattern):
        os.kill(os.getpid(), signal.SIGKILL)


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` was fully written by :func:`atomic_dir` (its marker is there)."""
    return (Path(folder) / COMPLETE_MARKER).is_file()


def _temp_siblings(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.tmp-*")) + sorted(target.parent.glob(f".{target.name}.old-*"))


def remove_stale_temps(target: str | Path) -> None:
    """Delete what a killed :func:`atomic_dir` / :func:`atomic_file` left beside ``target``."""
    import shutil

    for stale in _temp_siblings(Path(target)):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Write a folder all at once: yield a temporary sibling to fill, then write the completion
    marker and rename it into ``target`` (replacing an older or incomplete one).

    A kill or an error before the rename leaves ``target`` as it was (the temporary sibling is
    removed on error, and by the next save of ``target`` after a kill); a kill during the swap
    leaves ``target`` absent, never half-written. Callers treat a folder without the marker as absent.
    """
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.mkdir()
    try:
        yield tmp
        fault_point(f"commit:{target.name}")
        (tmp / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)  # a folder cannot be renamed onto a non-empty one: move it aside first
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _name_the_file(exc, target)
        raise


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Write one file all at once: yield a temporary sibling path to write, then rename it onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        fault_point(f"commit:{target.name}")
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _name_the_file(exc, target)
        raise


def read_json(path: str | Path) -> Any:
    """A JSON file's content; a file that cannot be read or parsed is one :class:`DataError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", path=path, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text (corrupt file?)", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror or exc})", path=path) from None


def load_tensors(path: str | Path) -> Any:
    """``torch.load`` of a file, data only (``weights_only=True``: tensors and plain containers,
    never code); a file that does not load is one :class:`DataError` naming it."""
    import pickle

    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = first_line(exc)
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "refused: it holds Python objects other than tensors and plain data"
        raise DataError(f"cannot load ({reason})", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror or exc})", path=path) from None
    except (RuntimeError, EOFError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise DataError(f"cannot load (corrupt file? {first_line(exc)})", path=path) from None


def load_safetensors(path: str | Path) -> dict[str, Any]:
    """A safetensors file's tensors; a file that does not load is one :class:`DataError` naming it."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(str(path))
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror or exc})", path=path) from None
    except Exception as exc:  # safetensors' own error type is not exported stably
        raise DataError(f"cannot load (corrupt file? {first_line(exc)})", path=path) from None


def check_path_component(name: str, *, what: str) -> str:
    """``name`` if it is one safe path component (a folder or file name inside a run dir), else a
    :class:`DataError`: empty, ``.``, ``..``, separators and control characters are refused."""
    bad = (not name or name.strip() != name or name in (".", "..") or "/" in name or "\\" in name
           or any(ord(c) < 32 for c in name) or name.startswith("."))
    if bad:
        raise DataError(f"{what} {name!r} is not a safe folder name (no '/', '\\', '..', leading '.', "
                        "spaces at the ends or control characters)")
    return name


def path_inside(root: str | Path, *parts: str) -> Path:
    """``root/parts...``, refused (:class:`DataError`) when it would resolve outside ``root``."""
    root = Path(root)
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise DataError(f"path {'/'.join(parts)!r} would be outside the run dir", path=root)
    return path


def run_dir_is_fresh(folder: str | Path) -> bool:
    """Whether ``folder`` holds nothing of a run (absent, empty, or only its lock file)."""
    folder = Path(folder)
    return not folder.exists() or all(p.name == LOCK_FILE for p in folder.iterdir())


@contextlib.contextmanager
def lock_run_dir(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on run dir ``folder`` (creating it) for the block: a second process
    that tries gets a :class:`DataError` at once instead of writing the same files.

    The lock is an OS file lock (``filelock``) on ``folder/.lock``: it is released when the
    process ends, however it ends, so a killed run never leaves the dir locked.
    """
    from filelock import FileLock, Timeout

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataError("exists and is not a folder", path=folder) from None
    lock = FileLock(folder / LOCK_FILE, timeout=0, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        raise DataError("run dir is in use by another running process; wait for it or pick another --out",
                        path=folder) from None
    try:
        yield
    finally:
        lock.release()
