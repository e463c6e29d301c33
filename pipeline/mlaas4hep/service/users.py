"""Each user's own corner of the service's data folder, and the rules that keep it theirs.

``DATA_DIR/users/<user id>/`` holds ``folders/<name>/`` (the original ``/upload?name=...``) and
``uploads/<id>/`` (``POST /api/v1/uploads``). Paths in a user's requests are taken from that
folder and must stay inside it. ``DATA_DIR/service.sqlite`` maps the original's process names
(``<folder>_<n>``) to job ids, per user. No FastAPI in here.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from ..errors import ConfigError, MLaaS4HEPError
from ..read import is_remote
from .archive import Unpacked, UnsafeArchive, unpack_tar_gz

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
UPLOAD_ID = re.compile(r"[0-9a-f]{12}")
CACHE = ".cache"  # the specs cache of a user's jobs, inside the user's folder


class NotFound(MLaaS4HEPError):
    """No such folder, upload or process of this user (404)."""


class Conflict(MLaaS4HEPError):
    """In use by an active job, or already there (409)."""


class LimitExceeded(MLaaS4HEPError):
    """Over one of the user's limits: ``status`` is 413 (size) or 429 (too many jobs)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def check_name(name: str | None, what: str = "name") -> str:
    if name is None:
        raise ConfigError("no folder name given", where=what, hint="e.g. /upload?name=luca")
    if not NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a valid folder name", where=what,
                          hint="1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def disk_usage(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links are not followed)."""
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            total += st.st_size
    return total


class UserSpace:
    """One user's folders and uploads under ``root`` (created on first use)."""

    def __init__(self, root: Path):
        self.root = root

    @property
    def folders(self) -> Path:
        return self.root / "folders"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def folder(self, name: str, must_exist: bool = True) -> Path:
        path = self.folders / check_name(name)
        if must_exist and not path.is_dir():
            raise NotFound(f"you have no folder {name!r}", hint="upload it first with /upload?name=" + name)
        return path

    def confine(self, name: str, what: str, base: Path | None = None, must_exist: bool = True) -> Path:
        """``name`` (relative to ``base``, default this user's folder) as a real path inside
        this user's folder; anything outside is refused, whatever links or ``..`` say."""
        base = base or self.root
        if "\x00" in name:
            raise ConfigError("NUL in a path", where=what)
        path = Path(name).expanduser()
        path = (path if path.is_absolute() else base / path)
        real = Path(os.path.realpath(path))
        root = Path(os.path.realpath(self.root))
        if real != root and root not in real.parents:
            raise ConfigError(f"{name!r} is outside your folder", where=what,
                              hint="name files inside your uploads (uploads/<id>/...) or folders (folders/<name>/...)")
        try:
            exists = real.exists()
        except OSError as err:  # a name too long, a component that is a file, ...
            raise ConfigError(f"{name[:200]!r} cannot be a file in your folder: {err.strerror}", where=what) from None
        if must_exist and not exists:
            raise ConfigError(f"{name!r} not found in your folder", where=what)
        return real

    def resolve_file(self, name: str, what: str, base: Path | None = None, redirector: str = "") -> str:
        """A data file of a job, as the job will read it: a remote URL as it is; a file inside
        the user's folder as its real path; with a ``redirector``, a name not found there (an
        LFN such as ``/store/...``) as the redirector's URL. Nothing else, so that the job never
        resolves a name against its own folder or the server's files."""
        if is_remote(name):
            return name
        if "://" in name or name.startswith("file:"):
            raise ConfigError(f"{name!r}: only root://, xroot://, http:// and https:// URLs are read", where=what)
        if redirector and not is_remote(redirector):
            raise ConfigError(f"the redirector must be a root://, xroot:// or http(s):// URL, got {redirector!r}",
                              where="params: redirector")
        base = base or self.root
        if redirector:
            local = Path(name) if os.path.isabs(name) else base / name
            if not os.path.lexists(local):
                # as the engine joins them (read.resolve_path): root://host//store/...
                return redirector.rstrip("/") + "/" + (name if name.startswith("/") else "/" + name)
        return str(self.confine(name, what, base))

    def unpack(self, archive: Path, dest: Path, max_members: int, max_bytes: int) -> Unpacked:
        return unpack_tar_gz(archive, dest, max_members=max_members, max_bytes=max_bytes)

    def new_upload(self, archive: Path, max_members: int, max_bytes: int) -> tuple[str, Unpacked]:
        upload_id = uuid.uuid4().hex[:12]
        self.uploads.mkdir(parents=True, exist_ok=True)
        return upload_id, self.unpack(archive, self.uploads / upload_id, max_members, max_bytes)

    def upload_path(self, upload_id: str) -> Path:
        path = self.uploads / upload_id
        if not UPLOAD_ID.fullmatch(upload_id) or not path.is_dir():
            raise NotFound(f"no upload {upload_id!r}")
        return path

    def replace_folder(self, name: str, archive: Path, max_members: int, max_bytes: int) -> Unpacked:
        """The original ``/upload?name=U``: the archive's one top folder becomes folder ``U``."""
        target = self.folder(name, must_exist=False)
        self.folders.mkdir(parents=True, exist_ok=True)
        staging = self.folders / f".incoming-{uuid.uuid4().hex[:8]}"
        unpacked = self.unpack(archive, staging, max_members, max_bytes)
        try:
            tops = list(staging.iterdir())
            if len(tops) != 1 or not tops[0].is_dir():
                names = ", ".join(sorted(p.name for p in tops)) or "nothing"
                raise UnsafeArchive(f"the archive must hold one top folder (it holds {names})",
                                    hint="make it with: tar czf folder.tar.gz folder")
            top = tops[0].name
            old = None
            if target.exists():
                old = self.folders / f".old-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
            os.replace(tops[0], target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        prefix = top + "/"
        return Unpacked(files=[f[len(prefix):] for f in unpacked.files if f.startswith(prefix)], bytes=unpacked.bytes)


class ProcessNames:
    """The original's process names: ``<folder>_<n>``, counted per user and folder."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS processes (owner TEXT NOT NULL, name TEXT NOT NULL, folder TEXT NOT NULL, "
              "job_id TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (owner, name))")

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(self.SCHEMA)

    def add(self, owner: str, folder: str, job_id: str) -> str:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (count,) = self._db.execute("SELECT COUNT(*) FROM processes WHERE owner = ? AND folder = ?",
                                            (owner, folder)).fetchone()
                name = f"{folder}_{count + 1}"
                while self._db.execute("SELECT 1 FROM processes WHERE owner = ? AND name = ?",
                                       (owner, name)).fetchone():
                    count += 1
                    name = f"{folder}_{count + 1}"
                self._db.execute("INSERT INTO processes VALUES (?, ?, ?, ?, ?)",
                                 (owner, name, folder, job_id, time.time()))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return name

    def job_id(self, owner: str, name: str) -> str:
        with self._lock:
            row = self._db.execute("SELECT job_id FROM processes WHERE owner = ? AND name = ?",
                                   (owner, name)).fetchone()
        if row is None:
            raise NotFound(f"you have no process {name!r}")
        return row[0]

    def jobs_of_folder(self, owner: str, folder: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT job_id FROM processes WHERE owner = ? AND folder = ?",
                                                   (owner, folder)).fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
