"""Files a job request names on the server: checked before anything is read.

A request comes from a user of the server (or from anyone holding its token), so a path in it
is never trusted: the model file must be a regular text file under the folders the server
allows, no larger than its limit; data files must be regular files. Every refusal is a
:class:`~mlaas4hep.errors.ConfigError` that says why, and none of them blocks (a FIFO or a
device is recognised without reading from it).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError

MODEL_SIZE_LIMIT = 1024 * 1024  # bytes of a model.py read from the server


def local_path(name: str, base_dir: Path, what: str) -> Path:
    """``name`` (relative to ``base_dir``) as an absolute path; a name the system refuses
    (too long, a NUL byte) is a ConfigError."""
    where = f"{what}: {_short(name)}"
    try:
        path = Path(name).expanduser()
        return path if path.is_absolute() else base_dir / path
    except (ValueError, RuntimeError) as err:  # RuntimeError: ~user that does not exist
        raise ConfigError(f"not a usable path: {err}", where=where) from None


def check_data_file(name: str, base_dir: Path, what: str = "files") -> Path:
    """A local ROOT file: it must exist and be a regular file (not a folder, FIFO or device)."""
    where = f"{what}: {_short(name)}"
    path = local_path(name, base_dir, what)
    try:
        info = os.stat(path)  # stat never blocks on a FIFO
    except FileNotFoundError:
        raise ConfigError("file not found on the server", where=where,
                          hint=f"relative paths are taken from {base_dir}") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot use this path: {_reason(err)}", where=where) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError("expected a ROOT file, got a folder", where=where)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"expected a ROOT file, got {_kind(info.st_mode)}", where=where)
    return path.resolve()


def read_model_file(name: str, base_dir: Path, allowed: Sequence[Path] | None,
                    limit: int = MODEL_SIZE_LIMIT) -> str:
    """The text of a model.py on the server.

    The path (links followed) must lie under one of ``allowed`` (None: anywhere, for a manager
    that serves nobody but its own user); the file must be a regular
    file of at most ``limit`` bytes, UTF-8 text without NUL bytes. It is opened without
    blocking and checked on the open descriptor, so swapping the file for a FIFO between the
    checks gains nothing.
    """
    where = f"model_path: {_short(name)}"
    path = local_path(name, base_dir, "model_path")
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot use this path: {_reason(err)}", where=where) from None
    roots = [Path(os.path.realpath(p)) for p in allowed] if allowed is not None else [Path("/")]
    if not any(real == root or real.is_relative_to(root) for root in roots):
        raise ConfigError("the server reads model files only from its own folders", where=where,
                          hint="allowed: " + ", ".join(map(str, roots)) + "; or send the source as 'model'")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError("file not found on the server", where=where,
                          hint=f"relative paths are taken from {base_dir}") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read it: {_reason(err)}", where=where) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError("expected a model.py file, got a folder", where=where)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"expected a model.py file, got {_kind(info.st_mode)}", where=where)
        if info.st_size > limit:
            raise ConfigError(f"the file has {info.st_size} bytes; the server reads model files up to {limit} bytes",
                              where=where)
        data = b""
        while len(data) <= limit and (block := os.read(fd, limit + 1 - len(data))):
            data += block
    except OSError as err:
        raise ConfigError(f"cannot read it: {_reason(err)}", where=where) from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while we looked
        raise ConfigError(f"the file has over {limit} bytes; the server reads model files up to {limit} bytes",
                          where=where)
    if b"\0" in data:
        raise ConfigError("expected Python source, got a binary file", where=where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"expected Python source in UTF-8, got byte {data[err.start]:#04x} at offset {err.start} "
                          "(a binary file?)", where=where) from None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "something that is not a regular file"


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


def _short(name: str, limit: int = 200) -> str:
    """A name as an error message shows it: long ones cut in the middle."""
    return name if len(name) <= limit else f"{name[:limit // 2]}...{name[-limit // 2:]} ({len(name)} characters)"


def check_model_source(source: str) -> None:
    """A syntax check only: model.py runs in the job process, never in the server."""
    try:
        compile(source, "model.py", "exec")
    except SyntaxError as err:
        raise ConfigError(f"syntax error: {err.msg}", where=f"model.py:{err.lineno}") from None
    except (RecursionError, MemoryError):
        raise ConfigError("the source nests too deeply to be compiled", where="model.py") from None
    except ValueError as err:  # NUL bytes
        raise ConfigError(f"not Python source: {err}", where="model.py") from None
