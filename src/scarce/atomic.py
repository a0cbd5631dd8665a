"""Atomic file writes: write to a temporary name in the same folder, then rename over the target.

A reader never sees a half-written file, and a killed process leaves at most a stray temporary file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

NAME_MAX = 255  # bytes in one name, and in a whole path (with its NUL), on Linux and macOS file systems
PATH_MAX = 4096


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` to produce the file, then move it onto `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_dir(path: str | os.PathLike, fill: Callable[[Path], None]) -> None:
    """Call `fill(tmp_folder)` to build a folder, then rename it onto `path` (absent, or an empty folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.mkdir()
        fill(tmp)
        for f in tmp.rglob("*"):  # flushed before the rename publishes them
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    def _write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, _write)


def write_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """One array as a .npy file (no pickles)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write_bytes(path, buf.getvalue())


def write_arrays(path: str | os.PathLike, **arrays) -> None:
    """Named arrays as one .npz file (no pickles)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in 4 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line (for logs such as metrics.jsonl); a line is written in one call."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")


def unmakeable(path: str | Path, file: bool = False) -> str | None:
    """Why no folder (a file, with `file`) can be made or reused at `path` (words to follow the path), or None
    when one can: a name or path longer than the file system takes, a file where a folder should be (or the
    reverse), or a nearest existing folder that takes no new entries (read-only, /proc). Checked by making
    and removing an empty probe folder there, so nothing is left behind."""
    path = Path(path)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > NAME_MAX:
        return f"cannot be made: a name in it is {longest} bytes long (the file system takes at most {NAME_MAX})"
    if len(os.fsencode(str(path.absolute()))) >= PATH_MAX:
        return f"cannot be made: the path is longer than {PATH_MAX - 1} bytes"
    nearest = next(p for p in (path, *path.absolute().parents) if p.exists())
    if nearest == path and file and path.is_dir():
        return "is a folder; give the path of a file"
    if nearest == path and not file and not path.is_dir():
        return "exists and is not a folder"
    if nearest != path and not nearest.is_dir():
        return f"cannot be made: {nearest} is a file, not a folder"
    probe_in = path.absolute().parent if nearest == path and file else nearest
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".scarce-probe-", dir=probe_in))
    except OSError as e:
        return f"cannot be made: {probe_in} takes no new entries ({e.strerror})"
    return None
