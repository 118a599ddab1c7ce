"""Atomic files and a run's output set (PLACEHOLDER of the hub branch).

This is a minimal local implementation of the API of DESIGN.md §"Files on disk" item 3, so
that the job can be written against it before the atomic helper's module is merged; at the
merge, the atomic helper's ``compressopt/storage/atomic.py`` replaces this file (no redo
journal here: a process killed during :meth:`RunOutput.commit`'s renames can leave a mix).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from compressopt.errors import CorruptFileError, OutputError

__all__ = ["RunOutput", "atomic_write", "read_run"]

Data = bytes | Callable[[BinaryIO], None]
REPORT = "report.json"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_tmp(tmp: Path, data: Data) -> tuple[int, str]:
    """Write `data` to `tmp` (fsynced); return its size and SHA-256."""
    with open(tmp, "wb") as f:
        if callable(data):
            data(f)
        else:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return tmp.stat().st_size, h.hexdigest()


def atomic_write(path: str | os.PathLike[str], data: Data) -> None:
    """Write `data` (bytes, or a callable writing to a binary file) to `path` atomically:
    a temporary file in the same folder, fsync, rename. Raises OutputError (one line) on
    any failure, the temporary file removed."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        _write_tmp(tmp, data)
        os.replace(tmp, p)
        _fsync_dir(p.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {p}: {e.strerror or e}") from e


class RunOutput:
    """The files of one run, staged and then committed together, the report last."""

    def __init__(self, out: Path, created: bool) -> None:
        self.out = out
        self._created = created
        self._staged: dict[str, tuple[Path, int, str]] = {}

    @classmethod
    def open(cls, out: str | os.PathLike[str], *, overwrite: bool = False) -> RunOutput:
        """Create and probe OUT; refuse '' and an OUT holding a report unless `overwrite`."""
        if os.fspath(out) == "":
            raise OutputError("--out must name a directory, got ''")
        p = Path(out)
        created = not p.exists()
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / f".probe-{os.getpid()}"
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            probe.unlink()
        except OSError as e:
            raise OutputError(f"--out {p}: cannot write there ({e.strerror or e})") from e
        if (p / REPORT).exists() and not overwrite:
            raise OutputError(f"--out {p} holds the report of another run; pass --overwrite "
                              "to replace it, or choose another --out")
        return cls(p, created)

    def stage(self, name: str, data: Data) -> None:
        """Write file `name` fully under a temporary name; nothing visible changes yet."""
        tmp = self.out / f".{name}.tmp-{os.getpid()}"
        try:
            size, digest = _write_tmp(tmp, data)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.out / name}: {e.strerror or e}") from e
        self._staged[name] = (tmp, size, digest)

    def commit(self, report: dict[str, Any]) -> dict[str, Any]:
        """Rename the staged files into place, then write ``report.json`` (with ``files``:
        name -> {bytes, sha256}) last; delete files of the old set not in the new one.
        Returns the report as written."""
        old = self._old_files()
        report = {**report, "files": {n: {"bytes": s, "sha256": h}
                                      for n, (_, s, h) in self._staged.items()}}
        text = (json.dumps(report, indent=2, allow_nan=False) + "\n").encode()
        try:
            for name, (tmp, _, _) in self._staged.items():
                os.replace(tmp, self.out / name)
            atomic_write(self.out / REPORT, text)
        except OSError as e:
            self.abort()
            raise OutputError(f"cannot write {self.out}: {e.strerror or e}") from e
        self._staged.clear()
        for name in old - set(report["files"]):
            (self.out / name).unlink(missing_ok=True)
        _fsync_dir(self.out)
        return report

    def abort(self) -> None:
        """Remove the staged files (and OUT itself if this run created it and it is empty)."""
        for tmp, _, _ in self._staged.values():
            tmp.unlink(missing_ok=True)
        self._staged.clear()
        if self._created:
            with contextlib.suppress(OSError):
                self.out.rmdir()

    def _old_files(self) -> set[str]:
        try:
            old = json.loads((self.out / REPORT).read_text())
            return set(old.get("files", {}))
        except (OSError, ValueError, AttributeError):
            return set()


def read_run(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse ``OUT/report.json`` and check every listed file's size and SHA-256."""
    p = Path(out)
    report = json.loads((p / REPORT).read_text())
    for name, meta in report.get("files", {}).items():
        f = p / name
        if not f.is_file() or f.stat().st_size != meta["bytes"]:
            raise CorruptFileError(f"{f}: missing or not {meta['bytes']} bytes")
        if hashlib.sha256(f.read_bytes()).hexdigest() != meta["sha256"]:
            raise CorruptFileError(f"{f}: SHA-256 differs from the report's")
    return report
