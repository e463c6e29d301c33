"""Unpacking users' tar.gz archives safely.

Only regular files and folders are written, each under the destination: no absolute names, no
``..``, no links, devices or FIFOs. The number of members, the bytes each declares and the bytes
actually decompressed are capped, so a zip bomb stops at the cap instead of filling the disk.
Files are written by this code (mode 0644, the service's owner), never by ``extractall``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import MLaaS4HEPError


class UnsafeArchive(MLaaS4HEPError):
    """An archive that is refused (unsafe member, too big, not a tar.gz); nothing is kept."""


@dataclass(frozen=True)
class Unpacked:
    files: list[str]  # relative names of the regular files written
    bytes: int


class _Counted:
    """A read-only stream that refuses to yield more than ``limit`` bytes."""

    def __init__(self, stream: BinaryIO, limit: int):
        self.stream = stream
        self.limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise UnsafeArchive(f"the archive decompresses to more than {self.limit} bytes (a zip bomb?)")
        return data


def member_path(name: str) -> PurePosixPath:
    """The member's name as a safe relative path, or :class:`UnsafeArchive`."""
    if "\\" in name or "\x00" in name:
        raise UnsafeArchive(f"member {name!r}: backslashes and NUL are not allowed in names")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise UnsafeArchive(f"member {name!r}: absolute paths are not allowed")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"member {name!r}: '..' is not allowed in names")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def unpack_tar_gz(source: str | os.PathLike | BinaryIO, dest: str | os.PathLike, *, max_members: int = 10_000,
                  max_bytes: int = 4 << 30) -> Unpacked:
    """Unpack the tar.gz ``source`` into the new folder ``dest`` (which must not exist). On any
    refusal ``dest`` is removed and :class:`UnsafeArchive` says which member and why."""
    dest = Path(dest)
    dest.mkdir(parents=True)
    try:
        return _unpack(source, dest, max_members, max_bytes)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _unpack(source, dest: Path, max_members: int, max_bytes: int) -> Unpacked:
    opened = open(source, "rb") if isinstance(source, (str, os.PathLike)) else None
    raw = opened or source
    # tar headers and padding take a few hundred bytes per member on top of the contents
    stream = _Counted(gzip.GzipFile(fileobj=raw, mode="rb"), max_bytes + 1024 * (max_members + 2))
    files: list[str] = []
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for count, member in enumerate(tar, 1):
                if count > max_members:
                    raise UnsafeArchive(f"the archive has more than {max_members} members")
                rel = member_path(member.name)
                if member.issym() or member.islnk():
                    raise UnsafeArchive(f"member {member.name!r}: links are not allowed "
                                        f"(it points to {member.linkname!r})")
                if member.isdir():
                    if str(rel) != ".":
                        _mkdir(dest, rel, member.name)
                    continue
                if not member.isfile():
                    raise UnsafeArchive(f"member {member.name!r}: only files and folders are allowed, not "
                                        f"{_kind(member)}")
                if str(rel) == ".":
                    raise UnsafeArchive(f"member {member.name!r}: a file needs a name")
                total += member.size
                if total > max_bytes:
                    raise UnsafeArchive(f"the archive unpacks to more than {max_bytes} bytes "
                                        f"(at member {member.name!r})")
                _mkdir(dest, rel.parent, member.name)
                target = dest.joinpath(*rel.parts)
                if target.is_dir():
                    raise UnsafeArchive(f"member {member.name!r}: a file where a folder of the same name exists")
                extracted = tar.extractfile(member)
                with open(target, "wb") as out:
                    written = 0
                    while chunk := extracted.read(1 << 20):
                        written += len(chunk)
                        if written > member.size:
                            raise UnsafeArchive(f"member {member.name!r} holds more than it declares")
                        out.write(chunk)
                os.chmod(target, 0o644)
                files.append(str(rel))
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as err:
        raise UnsafeArchive(f"not a readable tar.gz archive: {err}") from None
    finally:
        if opened is not None:
            opened.close()
    return Unpacked(files=sorted(set(files)), bytes=total)


def _mkdir(dest: Path, rel: PurePosixPath, name: str) -> None:
    folder = dest
    for part in rel.parts:
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise UnsafeArchive(f"member {name!r}: {part!r} is a file, not a folder")
        folder.mkdir(exist_ok=True)


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a FIFO"
    return f"type {member.type!r}"
