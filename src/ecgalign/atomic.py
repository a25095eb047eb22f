"""Artifacts are written to a temporary file beside the target, then renamed: a crash, a kill or a full disk
never leaves a half-written artifact under the final name.

Temporary names are `.<name>.<pid>.<random>`: an error or Ctrl-C removes them at once; what a SIGKILLed (or
OOM-killed) process left behind is removed by the next write of the same artifact, once that pid is gone. A full
disk raises DiskFullError (an OSError(ENOSPC)) naming the artifact.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .errors import DiskFullError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Remove `.<name>.<pid>.*` temporaries of `path` whose process no longer exists (SIGKILL, OOM kill)."""
    prefix = f".{path.name}."
    for p in path.parent.iterdir():
        pid = p.name[len(prefix):].split(".", 1)[0] if p.name.startswith(prefix) else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _reraise(e: BaseException, path: Path):
    """A full disk names the artifact; anything else propagates unchanged."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        raise DiskFullError(errno.ENOSPC, f"No space left on device while writing {path}: nothing was written "
                                          f"under that name; free some space and rerun") from e
    raise e


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temporary path in the target's folder; rename it to `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would otherwise become the artifact's mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _reraise(e, path)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary folder beside `path`; on success it replaces `path` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would otherwise become the artifact's mode
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _reraise(e, path)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)
