"""Outputs written as transactions: one file (:func:`atomic_write`) or a run's whole set
(:class:`RunOutput`, read back with :func:`read_run`).

Guarantees
----------
* **One file** (:func:`atomic_write`): the data goes to ``.<name>.tmp-<pid>`` in the same
  folder, is flushed and ``fsync``-ed, then ``os.replace``-d onto the name, and the folder is
  ``fsync``-ed. At every instant the name holds the complete old content or the complete new
  one (``rename`` is atomic within one POSIX file system); after a return both the content and
  the name are durable, as far as the file system honours ``fsync``.
* **A run's set** (:class:`RunOutput`): every file is staged under a temporary name, then one
  commit renames them all into place, ``report.json`` last, which lists each file of the set
  with its size and SHA-256. A redo journal ``.commit.json``, written atomically before the
  first rename, makes the commit all-or-nothing *for readers that go through*
  :func:`read_run` *or* :meth:`RunOutput.open`: a process killed at any point leaves either
  no journal (the old set is untouched) or a journal that the next reader rolls forward to the
  complete new set. ``report.json`` always parses.

What is *not* atomic
--------------------
* A plain reader (``cat``, a file browser) that looks at OUT during the microseconds of the
  renames, or after a crash and before the next :func:`read_run`, can see a mix of old and
  new files; ``report.json`` is then still the old one (it is renamed last), and the
  journal is present.
* One writer per OUT: two processes committing into the same OUT at once are not supported.
* Temporary files of a killed process stay until the next :meth:`RunOutput.open` of their
  folder, which removes those whose pid is no longer alive (pids of another machine, on a
  shared file system, are not told apart).
* Files of OUT that belong to no set (a user's own files, ``checkpoint.safetensors``, logs)
  are never touched by a commit.

Signals: a write beyond ``RLIMIT_FSIZE`` raises ``OSError(EFBIG)`` only while ``SIGXFSZ`` is
ignored; CPython's interpreter ignores it at start-up (as it does ``SIGPIPE``), so this holds
unless the process has restored the default, which kills it. This module never changes signal
handlers; a program that is not sure (the CLI) calls :func:`ignore_sigxfsz` once at start-up.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import re
import signal
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

from compressopt.errors import (
    CompressoptError,
    CorruptFileError,
    NonFiniteError,
    OutputError,
)

__all__ = ["JOURNAL", "REPORT", "RunOutput", "atomic_write", "ignore_sigxfsz", "read_run"]

logger = logging.getLogger(__name__)

REPORT = "report.json"
"""Name of a run's report in OUT; written last by :meth:`RunOutput.commit`."""
JOURNAL = ".commit.json"
"""Name of the redo journal of an unfinished commit in OUT."""

Data = bytes | bytearray | memoryview | Callable[[BinaryIO], object]
_JOURNAL_FORMAT = "compressopt-commit"
_JOURNAL_VERSION = 1
_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>[0-9]+)$")
_CHUNK = 1 << 20
_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EFBIG: "file size limit exceeded (RLIMIT_FSIZE)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENAMETOOLONG: "file name too long",
}


# --------------------------------------------------------------------------- one file


def _reason(e: OSError) -> str:
    return _REASONS.get(e.errno, e.strerror or str(e) or type(e).__name__)


def _tmp_name(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}"


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems cannot fsync a directory
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _digest(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


#: test hook (tests/test_cli_faults.py): the environment variable that names a point at
#: which this process kills itself with SIGKILL: ``write:NAME`` (halfway through writing the
#: file NAME of OUT, or its temporary file), ``rename:NAME`` (before renaming NAME into place
#: during a commit), ``delete`` (after a commit's renames, before its deletions)
KILL_AT = "COMPRESSOPT_TEST_KILL_AT"


def _kill_point(point: str, f: BinaryIO | None = None) -> None:
    """SIGKILL this process at `point` if ``$COMPRESSOPT_TEST_KILL_AT`` names it (a test
    hook: a crash at a chosen instant; `f`, a file being written, is flushed first)."""
    if os.environ.get(KILL_AT) == point:
        if f is not None:
            f.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _write_file(path: Path, data: Data) -> tuple[int, str]:
    """Write `data` to `path` (truncating), flush and fsync; return (bytes, SHA-256)."""
    is_buffer = isinstance(data, bytes | bytearray | memoryview)
    if not is_buffer and not callable(data):
        raise TypeError(
            f"data must be bytes or a callable writing to a binary file, not {type(data).__name__}"
        )
    with open(path, "wb") as f:
        if is_buffer:
            view = memoryview(data).cast("B")
            f.write(view[: len(view) // 2])
            m = _TMP.match(path.name)
            _kill_point(f"write:{m['name'] if m else path.name}", f)
            f.write(view[len(view) // 2 :])
        else:
            data(f)
        f.flush()
        os.fsync(f.fileno())
    if is_buffer:
        return memoryview(data).nbytes, hashlib.sha256(data).hexdigest()
    return _digest(path)  # what is on disk, whatever the writer did (seek, ...)


def _write_or_raise(tmp: Path, target: Path, data: Data, *, replace: bool) -> tuple[int, str]:
    """`_write_file` to `tmp`, then (if `replace`) rename onto `target`; on failure remove
    `tmp` and turn an OSError into a one-line OutputError naming `target`."""
    try:
        result = _write_file(tmp, data)
        if replace:
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        return result
    except BaseException as e:
        _remove_quietly(tmp)
        if isinstance(e, OSError) and not isinstance(e, CompressoptError):
            raise OutputError(f"cannot write {target}: {_reason(e)}") from e
        raise


def atomic_write(path: str | os.PathLike[str], data: Data) -> tuple[int, str]:
    """Replace the file `path` by `data` all at once: old content or new, never a part.

    Writes ``.<name>.tmp-<pid>`` in the folder of `path`, flushes and ``fsync``-s it,
    ``os.replace``-s it onto `path`, then ``fsync``-s the folder.

    Parameters
    ----------
    path : file to create or replace; its folder must exist.
    data : bytes-like (bytes, bytearray, memoryview), or a callable ``data(f)`` that writes
        the content to the binary file object ``f`` (e.g. one that streams a safetensors
        header and then its payload in pieces; it may seek). No pickle: the project's files
        are safetensors + JSON.

    Returns
    -------
    (n, sha256) : size of the written file in bytes, and its SHA-256 as 64 hex digits (a
        callable's output is read back once to hash it: O(n)).

    Raises
    ------
    OutputError
        Any ``OSError`` while writing, syncing or renaming, in one line naming `path` and the
        reason ("disk full", "file size limit exceeded (RLIMIT_FSIZE)", "permission denied",
        ...); the original error is chained. `path` is unchanged and the temporary file
        removed.
    TypeError
        `data` is neither bytes-like nor callable.
    Exception
        Any other exception raised by a callable `data` propagates unchanged (a bug in the
        writer is not an output problem), after the temporary file has been removed.

    Notes
    -----
    Atomic only within one file system with POSIX ``rename`` (not on every network file
    system). A process killed during the write leaves the temporary file; see
    :meth:`RunOutput.open` for its removal.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(d / "a.txt", b"hello")[0]
    5
    >>> _ = atomic_write(d / "a.txt", lambda f: f.write(b"bye"))
    >>> (d / "a.txt").read_bytes(), sorted(p.name for p in d.iterdir())
    (b'bye', ['a.txt'])
    """
    target = Path(path)
    return _write_or_raise(target.with_name(_tmp_name(target.name)), target, data, replace=True)


def ignore_sigxfsz() -> Any:
    """Ignore ``SIGXFSZ`` so that a write beyond ``RLIMIT_FSIZE`` raises ``OSError(EFBIG)``
    (then :class:`~compressopt.errors.OutputError`) instead of killing the process.

    CPython's interpreter already ignores ``SIGXFSZ`` at start-up; this restores that where it
    was undone (an embedding application, a library that reset signal handlers). Meant for the
    CLI's start-up; the library never calls it. Call it from the main thread.

    Returns
    -------
    The previous handler (for ``signal.signal``), or None where the platform has no
    ``SIGXFSZ``.
    """
    if not hasattr(signal, "SIGXFSZ"):  # pragma: no cover - not on POSIX
        return None
    return signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


# --------------------------------------------------------------------------- a run's set


def _check_name(name: object, error: type[Exception] = ValueError) -> str:
    """A set member is a plain file name of OUT: no folder, not hidden, not the report."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..", REPORT)
        or name.startswith(".")
        or "/" in name
        or "\0" in name
        or (os.altsep is not None and os.altsep in name)
        or len(name.encode()) > 200
    ):
        raise error(
            f"invalid output file name {name!r}: a plain file name (no folder, not starting "
            f"with '.', at most 200 bytes) other than {REPORT!r}"
        )
    return name


def _out_dir(out: str | os.PathLike[str] | None) -> Path:
    if out is None or os.fspath(out) == "":
        raise OutputError("--out must name a directory")
    return Path(out)


def _load_json(path: Path, what: str) -> Any:
    """Parsed JSON of `path`, None if it does not exist; CorruptFileError if it won't parse."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFileError(f"{path}: {what} is not valid JSON ({e})") from e


def _load_report(out: Path) -> dict | None:
    report = _load_json(out / REPORT, "the report")
    if report is not None and not isinstance(report, dict):
        raise CorruptFileError(f"{out / REPORT}: the report is not a JSON object")
    return report


def _report_files(out: Path, report: dict) -> dict[str, tuple[int, str]]:
    """The set a report lists, validated: name -> (bytes, sha256)."""
    files = report.get("files")
    where = out / REPORT
    if not isinstance(files, dict):
        raise CorruptFileError(f"{where}: no 'files' table (not written by RunOutput.commit)")
    result = {}
    for name, rec in files.items():
        _check_name(name, CorruptFileError)
        if not (
            isinstance(rec, dict)
            and isinstance(rec.get("bytes"), int)
            and isinstance(rec.get("sha256"), str)
        ):
            raise CorruptFileError(f"{where}: malformed entry for {name!r}: {rec!r}")
        result[name] = (rec["bytes"], rec["sha256"])
    return result


def _read_journal(out: Path) -> dict | None:
    path = out / JOURNAL
    j = _load_json(path, "the commit journal")
    if j is None:
        return None
    try:
        ok = j["format"] == _JOURNAL_FORMAT and j["version"] == _JOURNAL_VERSION
        renames = [(r["from"], r["to"], r["bytes"], r["sha256"]) for r in j["renames"]]
        delete = [_check_name(n, CorruptFileError) for n in j["delete"]]
    except (KeyError, TypeError) as e:
        raise CorruptFileError(f"{path}: malformed commit journal ({e!r})") from e
    if not ok:
        raise CorruptFileError(f"{path}: not a version-{_JOURNAL_VERSION} commit journal")
    for src, dst, _, _ in renames:
        if dst != REPORT:
            _check_name(dst, CorruptFileError)
        m = _TMP.match(src) if isinstance(src, str) else None
        if m is None or m["name"] != dst:
            raise CorruptFileError(f"{path}: rename {src!r} -> {dst!r} is not of a staged file")
    return {"renames": renames, "delete": delete}


def _apply(out: Path, journal: dict) -> None:
    """Do the journal's renames, then its deletions, then remove it. Idempotent: a rename
    whose source is gone counts as done when the target has the recorded size and SHA-256."""
    for src, dst, n, sha in journal["renames"]:
        _kill_point(f"rename:{dst}")
        try:
            os.replace(out / src, out / dst)
        except FileNotFoundError:
            try:
                done = _digest(out / dst) == (n, sha)
            except FileNotFoundError:
                done = False
            if not done:
                raise CorruptFileError(
                    f"{out / dst}: an interrupted commit cannot be completed: its staged file "
                    f"{src} is gone and {dst} does not hold the committed content"
                ) from None
    _fsync_dir(out)
    _kill_point("delete")
    for name in journal["delete"]:
        (out / name).unlink(missing_ok=True)
    _fsync_dir(out)
    (out / JOURNAL).unlink(missing_ok=True)
    _fsync_dir(out)


def _roll_forward(out: Path) -> bool:
    """Complete an interrupted commit of `out`, if any; True if there was one."""
    journal = _read_journal(out)
    if journal is None:
        return False
    logger.warning("%s: completing an interrupted commit (%s)", out, JOURNAL)
    try:
        _apply(out, journal)
    except OSError as e:
        if isinstance(e, CompressoptError):
            raise
        raise OutputError(f"cannot complete the interrupted commit in {out}: {_reason(e)}") from e
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or an absurd pid: leave the file alone)
    return True


def _remove_stale(out: Path) -> None:
    """Remove ``.*.tmp-<pid>`` files of `out` whose process is no longer alive."""
    for entry in os.scandir(out):
        m = _TMP.match(entry.name)
        if m and entry.is_file(follow_symlinks=False) and not _pid_alive(int(m["pid"])):
            logger.info("%s: removing %s left by a dead process", out, entry.name)
            _remove_quietly(Path(entry.path))


def _find_nonfinite(obj: Any, where: str) -> tuple[str, float] | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return where, obj
    if isinstance(obj, dict):
        items = ((f"{where}[{k!r}]", v) for k, v in obj.items())
    elif isinstance(obj, list | tuple):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for w, v in items:
        if (found := _find_nonfinite(v, w)) is not None:
            return found
    return None


class RunOutput:
    """A run's output set in a folder OUT, committed all at once with its report.

    Use :meth:`open` (not the constructor), :meth:`stage` each file, then :meth:`commit` the
    report; as a context manager, an exception (or leaving without a commit) aborts: staged
    files are removed and OUT is unchanged::

        with RunOutput.open("runs/x", overwrite=args.overwrite) as run:   # before training
            ...
            run.stage("model.cpz", blob)
            run.stage("config.toml", toml_bytes)
            report = run.commit(report)

    OUT then holds ``model.cpz``, ``config.toml`` and ``report.json``, whose ``"files"``
    table gives each file's size and SHA-256. See the module's docstring for what is atomic.
    A RunOutput may commit several times (each commit replaces the previous set). Not
    thread-safe; one writer per OUT.

    Attributes
    ----------
    path : Path
        OUT.
    run_id : str
        Identifier stored as the report's ``"run_id"``; a resumed run passes it to
        :meth:`open` to continue into its own OUT.
    """

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self._staged: dict[str, tuple[int, str]] = {}

    @classmethod
    def open(
        cls,
        out: str | os.PathLike[str] | None,
        *,
        overwrite: bool = False,
        run_id: str | None = None,
    ) -> RunOutput:
        """Make OUT ready for a run; call it before any long work.

        In order: refuses an empty `out`; creates the folder (with parents); probes that it
        is writable (creates and removes a file); rolls forward an interrupted commit;
        removes temporary files of dead processes; refuses an OUT whose ``report.json``
        belongs to another run, unless `overwrite`.

        Parameters
        ----------
        out : the output folder (``--out``).
        overwrite : allow replacing the set of another run's report (``--overwrite``). The
            old set is replaced only at :meth:`commit`: files it lists that the new set lacks
            are deleted then; until then OUT is untouched.
        run_id : this run's identifier (default: a new random one). An OUT whose report has
            the same ``"run_id"`` is this run's own (a resumed run) and is accepted.

        Raises
        ------
        OutputError
            `out` is ``''`` or None ("--out must name a directory"); OUT is not a folder,
            cannot be created or is not writable; OUT holds the report of another run, or an
            unreadable ``report.json``, and not `overwrite` (the message names
            ``--overwrite``); an interrupted commit cannot be completed for an OSError.
        CorruptFileError
            The journal of an interrupted commit is malformed, or its staged files are gone.
        """
        path = _out_dir(out)
        if path.exists() and not path.is_dir():
            raise OutputError(f"--out {path} is not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / _tmp_name("write-probe")
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(probe)
        except OSError as e:
            raise OutputError(f"--out {path} is not writable: {_reason(e)}") from e
        _roll_forward(path)
        _remove_stale(path)
        if run_id is None:
            run_id = uuid.uuid4().hex
        elif not isinstance(run_id, str) or not run_id:
            raise ValueError(f"run_id must be a non-empty string, not {run_id!r}")
        if not overwrite:
            try:
                report = _load_report(path)
            except CorruptFileError as e:
                raise OutputError(
                    f"--out {path} holds an unreadable {REPORT}; use --overwrite to replace it"
                ) from e
            if report is not None and report.get("run_id") != run_id:
                raise OutputError(
                    f"--out {path} already holds the report of another run; use --overwrite "
                    f"to replace its files, or choose another --out"
                )
        return cls(path, run_id)

    @property
    def staged(self) -> Mapping[str, tuple[int, str]]:
        """Files staged since the last commit: name -> (bytes, SHA-256 hex); read-only."""
        return MappingProxyType(self._staged)

    def stage(self, name: str, data: Data) -> tuple[int, str]:
        """Write the file `name` of the set, fully and fsynced, under a temporary name.

        Nothing visible in OUT changes until :meth:`commit`. Staging a name again replaces
        the earlier content.

        Parameters
        ----------
        name : plain file name in OUT (no folder, not starting with '.', not ``report.json``).
        data : as in :func:`atomic_write`: bytes-like or a callable writing to a binary file.

        Returns
        -------
        (n, sha256) : the file's size in bytes and SHA-256 (also in :attr:`staged`).

        Raises
        ------
        ValueError
            Invalid `name`.
        OutputError
            The write failed (disk full, file-size limit, ...); the temporary file is
            removed and `name` is no longer staged.
        """
        _check_name(name)
        self._staged.pop(name, None)
        tmp = self.path / _tmp_name(name)
        self._staged[name] = _write_or_raise(tmp, self.path / name, data, replace=False)
        return self._staged[name]

    def commit(self, report: Mapping[str, Any], *, delete: Iterable[str] = ()) -> dict[str, Any]:
        """Put the staged files and the report in place as one set, the report last.

        Adds ``"run_id"`` and ``"files": {name: {"bytes": n, "sha256": h}}`` (staged files)
        to a copy of `report` and serializes it (``json.dumps(..., allow_nan=False)``) before
        anything on disk changes. Then writes the report under a temporary name, the redo
        journal (atomically), renames every staged file and the report into place, deletes
        the previous report's files that the new set lacks and the names in `delete`
        (files of OUT the committed run makes stale, e.g. its checkpoint: deleted as part of
        the commit, so an interrupted commit's roll-forward deletes them too), and removes
        the journal. Afterwards nothing is staged; the RunOutput may stage and commit again.

        Returns
        -------
        dict : the report as written (with ``run_id`` and ``files``).

        Raises
        ------
        NonFiniteError
            A float in `report` is NaN or infinite (JSON has neither); the message gives its
            key path, e.g. ``report['diagnostics']['loss'][3]``. OUT is unchanged and the
            files stay staged.
        TypeError
            `report` holds a value JSON cannot represent; nothing changed.
        OutputError
            Writing the report or the journal failed (OUT unchanged, files still staged),
            or the renames failed midway (the journal stays: the next :meth:`open` or
            :func:`read_run` completes the commit).
        """
        stale = {_check_name(d) for d in delete}  # ValueError before anything changes
        files = {n: {"bytes": b, "sha256": h} for n, (b, h) in self._staged.items()}
        full = {**report, "run_id": self.run_id, "files": files}
        if (bad := _find_nonfinite(full, "report")) is not None:
            raise NonFiniteError(
                f"{bad[0]} is {bad[1]}: JSON has no NaN or Infinity; nothing was written"
            )
        try:
            text = (json.dumps(full, indent=2, allow_nan=False) + "\n").encode()
        except (TypeError, ValueError) as e:
            raise TypeError(f"the report cannot be written as JSON: {e}") from e

        out = self.path
        tmp = out / _tmp_name(REPORT)
        n, sha = _write_or_raise(tmp, out / REPORT, text, replace=False)
        try:
            old = _load_report(out)
            old_set = set(_report_files(out, old)) if old is not None else set()
        except CorruptFileError:
            old_set = set()  # an unreadable old report names no files we could delete
        renames = [
            {"from": _tmp_name(name), "to": name, "bytes": b, "sha256": h}
            for name, (b, h) in self._staged.items()
        ] + [{"from": tmp.name, "to": REPORT, "bytes": n, "sha256": sha}]
        journal = {
            "format": _JOURNAL_FORMAT,
            "version": _JOURNAL_VERSION,
            "run_id": self.run_id,
            "renames": renames,
            "delete": sorted((old_set | stale) - set(files)),
        }
        try:
            atomic_write(out / JOURNAL, json.dumps(journal, indent=1).encode())
        except BaseException:
            _remove_quietly(tmp)
            raise
        self._staged = {}  # from here on the staged files belong to the journal
        try:
            _apply(out, _read_journal(out))
        except OSError as e:
            if isinstance(e, CompressoptError):
                raise
            raise OutputError(
                f"commit to {out} interrupted: {_reason(e)}; the next open or read of "
                f"{out} completes it"
            ) from e
        return full

    def abort(self) -> None:
        """Remove the staged files; OUT keeps its previous set. Idempotent."""
        for name in self._staged:
            _remove_quietly(self.path / _tmp_name(name))
        self._staged = {}

    def __enter__(self) -> RunOutput:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._staged:
            if exc_type is None:
                logger.warning(
                    "%s: %d staged file(s) were not committed; removed", self.path,
                    len(self._staged),
                )
            self.abort()


def read_run(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The report of the run in OUT, after checking every file of its set.

    Rolls forward an interrupted commit first (so it writes to OUT when a journal is there),
    parses ``report.json`` and checks the size and SHA-256 of each file its ``"files"`` table
    lists: O(total bytes of the set).

    Returns
    -------
    dict : the parsed report.

    Raises
    ------
    OutputError
        `out` is empty, not a folder, holds no ``report.json``, or an interrupted commit
        cannot be completed for an OSError (e.g. OUT is read-only).
    CorruptFileError
        ``report.json`` does not parse or has no valid ``"files"`` table, a listed file is
        missing or differs in size or SHA-256 (the message names the file), or the journal
        of an interrupted commit is malformed.
    """
    path = _out_dir(out)
    if not path.is_dir():
        raise OutputError(f"{path} is not a directory")
    _roll_forward(path)
    report = _load_report(path)
    if report is None:
        raise OutputError(f"{path} holds no run: {REPORT} is missing")
    for name, (n, sha) in _report_files(path, report).items():
        try:
            found = _digest(path / name)
        except FileNotFoundError:
            raise CorruptFileError(f"{path / name}: listed in {REPORT} but missing") from None
        if found[0] != n:
            raise CorruptFileError(f"{path / name}: {found[0]} bytes, {REPORT} lists {n}")
        if found[1] != sha:
            raise CorruptFileError(f"{path / name}: SHA-256 differs from {REPORT}'s")
    return report
