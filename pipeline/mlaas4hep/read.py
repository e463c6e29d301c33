"""Reading ROOT trees with uproot: local paths, ``root://`` (XRootD) and ``http(s)://``.

Only the branches needed are read, by entry ranges. Remote faults are retried a bounded number
of times with exponential backoff; everything else (a missing file, a wrong tree name, a
missing branch, a corrupt or truncated file) becomes a :class:`~mlaas4hep.errors.DataError`
that names the file and the object.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import awkward as ak
import numpy as np
import uproot

from . import inflate, xrootd
from .errors import DataError, did_you_mean
from .heap import bound_retained_memory

FLAT, JAGGED = "flat", "jagged"
REMOTE_SCHEMES = ("root://", "http://", "https://", "xroot://")
#: XRootD handles a ``root://`` file is read through, each with its own thread: baskets are
#: asked for four at a time instead of one after the other (uproot's default, one handle, waits a
#: round trip per basket). On loopback the first epoch of ``bench/stream.py`` went from 2.2-2.5
#: to 1.9 s; over a wide-area network, where a round trip is 10-100 ms, it matters more.
XROOTD_HANDLES = 4
_NUMERIC_KINDS = "biuf"

T = TypeVar("T")

inflate.configure()  # ISA-L inflates ZLIB baskets where installed: see mlaas4hep/inflate.py
#: what a damaged file raises while uproot reads its directory or a basket (bytes that do not
#: inflate, with Python's zlib or ISA-L; bytes that do not deserialise)
_DAMAGE = (*inflate.ERRORS, uproot.deserialization.DeserializationError)


def is_remote(path: str) -> bool:
    return path.startswith(REMOTE_SCHEMES)


def resolve_path(name: str, redirector: str = "", base_dir: str | None = None, origin: str = "") -> str:
    """Where to read ``name`` from.

    URLs are kept. A local name is taken relative to the current folder, else relative to the
    list file it came from (``base_dir``). A name that is neither, with a ``redirector`` set,
    is read through the redirector (the original MLaaS4HEP behaviour for LFNs like /store/...).
    """
    if is_remote(name):
        return name
    if name.startswith("file://"):
        name = name[len("file://"):]
    candidates = [name]
    if base_dir and not os.path.isabs(name):
        candidates.append(os.path.join(base_dir, name))
    for candidate in candidates:
        if os.path.exists(candidate):
            return os.path.abspath(candidate)
    if redirector:
        return redirector.rstrip("/") + "/" + (name if name.startswith("/") else "/" + name)
    where = f"{origin}: {name}" if origin else name
    looked = f" (looked in {os.getcwd()}" + (f" and {base_dir})" if base_dir and base_dir != os.getcwd() else ")")
    raise DataError("ROOT file not found" + looked, where=where,
                    hint="set 'redirector' in params.json to read names that are not local through XRootD")


@dataclass(frozen=True, slots=True)
class BranchInfo:
    """What a branch holds and whether it can be a feature.

    ``name`` is the key the engine uses for it: the branch's own name, or its full path in the
    tree (``ChannelSet/channel3/fPulseCount``) where several leaves share that name.
    """

    name: str
    kind: str | None  # "flat", "jagged", or None when it cannot be a feature
    dtype: str  # numpy dtype of the values ("" when not numeric)
    typename: str  # ROOT's C++ type name
    reason: str = ""  # why it cannot be a feature
    path: str = ""  # full path in the tree
    title: str = ""  # the branch's title in the file (may carry a unit: "jet pT [GeV]")

    @property
    def supported(self) -> bool:
        return self.kind is not None


class BranchTable(Mapping[str, BranchInfo]):
    """The leaf branches of a tree by key, in file order; each one's :class:`BranchInfo` is
    worked out when first asked for (``table[key]``, ``.get``, ``.items()``...) and kept. Keys,
    ``in`` and ``len`` need no classification."""

    def __init__(self, keys: Iterable[str], classify: Callable[[str], BranchInfo]):
        self._keys = dict.fromkeys(keys)
        self._classify = classify
        self._infos: dict[str, BranchInfo] = {}

    def __getitem__(self, key: str) -> BranchInfo:
        info = self._infos.get(key)
        if info is None:
            if key not in self._keys:
                raise KeyError(key)
            info = self._infos[key] = _interned(self._classify(key))
        return info

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def classified(self) -> list[str]:
        """The keys classified so far."""
        return list(self._infos)

    def classify_all(self) -> BranchTable:
        """Classify every branch now (while the file is open: a released file would be reopened)."""
        for key in self._keys:
            self[key]
        return self


def _interned(info: BranchInfo) -> BranchInfo:
    """``info`` with its texts interned: the files of a sample name and describe their branches
    alike, and a Dataset of hundreds of files keeps each text once, not once a file."""
    return BranchInfo(*(sys.intern(v) if isinstance(v, str) else v for v in
                        (info.name, info.kind, info.dtype, info.typename, info.reason, info.path, info.title)))


def _numeric(interp: Any) -> np.dtype | None:
    """The numpy dtype of one value of a plain-number interpretation (Double32_t and Float16_t
    included), or None."""
    if isinstance(interp, uproot.interpretation.numerical.TruncatedNumerical):
        return None if interp.to_dims else interp.to_dtype.newbyteorder("=")
    if isinstance(interp, uproot.AsDtype):
        dtype = interp.from_dtype
        if dtype.names is None and dtype.shape == () and dtype.kind in _NUMERIC_KINDS:
            return dtype.newbyteorder("=")
    return None


def branch_info(branch: Any, key: str | None = None, path: str = "", tree_entries: int | None = None) -> BranchInfo:
    """Classify one uproot TBranch: a flat number per event, a jagged list of numbers per event,
    or something the engine does not use as a feature (strings, objects, fixed-size arrays,
    leaf lists, branches never filled)."""
    info = _classify(branch, key, path, tree_entries)
    title = getattr(branch, "title", "")
    return replace(info, title=title) if isinstance(title, str) and title else info


def _classify(branch: Any, key: str | None, path: str, tree_entries: int | None) -> BranchInfo:
    key = key or branch.name
    interp = branch.interpretation
    try:
        typename = branch.typename
    except Exception:  # noqa: BLE001 - uproot cannot name some leaf-list types (a KeyError)
        typename = ""

    def unsupported(reason: str, dtype: str = "") -> BranchInfo:
        return BranchInfo(key, None, dtype, typename, reason, path or key)

    if tree_entries is not None and int(branch.num_entries) != tree_entries:
        return unsupported(f"holds {int(branch.num_entries)} entries but the tree has {tree_entries} "
                           "(a branch never filled, or filled for part of the tree)")
    dtype = _numeric(interp)
    if dtype is not None:
        return BranchInfo(key, FLAT, dtype.name, typename, "", path or key)
    if isinstance(interp, uproot.interpretation.numerical.TruncatedNumerical):
        return unsupported(f"fixed-size array {typename}: not supported as a feature", interp.to_dtype.name)
    if isinstance(interp, uproot.AsDtype):
        dtype = interp.from_dtype
        fields = dtype.names or dtype.base.names
        if fields is not None:
            return unsupported(f"leaf list with fields {', '.join(fields)}: not supported as a feature")
        if dtype.shape != ():
            return unsupported(f"fixed-size array {typename}: not supported as a feature",
                               dtype.base.newbyteorder("=").name)
    if isinstance(interp, uproot.AsJagged):
        content = _numeric(interp.content)
        if content is not None:
            return BranchInfo(key, JAGGED, content.name, typename, "", path or key)
    if isinstance(interp, uproot.AsObjects):
        content = _container_of_numbers(interp.model)
        if content is not None:
            return BranchInfo(key, JAGGED, content.name, typename, "", path or key)
    if isinstance(interp, uproot.AsStrings):
        return unsupported(f"string branch ({typename})")
    return unsupported(f"{typename or type(interp).__name__}: only numbers, booleans and variable-length "
                       "arrays of them can be features")


def field_info(fld: Any, name: str) -> BranchInfo:
    """Classify one top-level RNTuple field by the awkward form uproot gives it: a number, a
    variable-length list of numbers, or something else (strings, records, nested lists)."""
    try:
        typename = fld.typename
    except Exception:  # noqa: BLE001 - a type uproot cannot name
        typename = ""
    form = fld.to_akform()
    form = form[0] if isinstance(form, tuple) else form
    form = form.contents[0] if isinstance(form, ak.forms.RecordForm) and len(form.contents) == 1 else form
    if isinstance(form, ak.forms.NumpyForm) and not form.inner_shape:
        return BranchInfo(name, FLAT, np.dtype(form.primitive).name, typename, "", name)
    if isinstance(form, (ak.forms.ListOffsetForm, ak.forms.ListForm)) and isinstance(form.content, ak.forms.NumpyForm) \
            and not form.content.inner_shape and form.parameter("__array__") != "string":
        return BranchInfo(name, JAGGED, np.dtype(form.content.primitive).name, typename, "", name)
    if form.parameter("__array__") == "string":
        return BranchInfo(name, None, "", typename, f"string field ({typename})", name)
    return BranchInfo(name, None, "", typename, f"{typename or form.type}: only numbers, booleans and "
                                                "variable-length arrays of them can be features", name)


def _container_of_numbers(model: Any) -> np.dtype | None:
    """The element dtype of an STL vector / set / list / RVec of plain numbers, which uproot
    reads as a jagged array of numbers; None for anything else (nested containers, objects)."""
    containers = uproot.containers
    if isinstance(model, (containers.AsVector, containers.AsSet, containers.AsList, containers.AsRVec)) \
            and not isinstance(model, containers.AsBitSet):
        items = model.keys if isinstance(model, containers.AsSet) else model.values
        if isinstance(items, np.dtype) and items.names is None and items.shape == () and items.kind in _NUMERIC_KINDS:
            return items.newbyteorder("=")
    return None


def _transient(err: BaseException) -> bool:
    """A remote fault worth retrying (a dropped connection, a timeout, a 5xx), as opposed to a
    missing file, a refused permission or a corrupt file."""
    if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    status = getattr(err, "status", None)  # aiohttp / fsspec HTTP errors
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
        return False
    text = str(err).lower()
    if "no such file" in text or "[3011]" in text or "[3010]" in text:  # XRootD: not found, not allowed
        return False
    if isinstance(err, (OSError, TimeoutError, ConnectionError)):
        return True
    module = type(err).__module__ or ""
    return module.startswith(("aiohttp", "fsspec", "requests", "urllib3"))


class _Header:
    """What planning needs of one branch of a released file, from the file's header (no read):
    the attributes of uproot's TBranch of the same names."""

    __slots__ = ("uncompressed_bytes", "num_baskets", "entry_offsets")

    def __init__(self, uncompressed_bytes: int, num_baskets: int, entry_offsets: tuple[int, ...]):
        self.uncompressed_bytes = uncompressed_bytes
        self.num_baskets = num_baskets
        self.entry_offsets = entry_offsets


def _headers(objects: Mapping[str, Any], keys: Iterable[str]) -> dict[str, _Header]:
    """:class:`_Header` of each of ``keys``; the branches of a file mostly start their baskets
    at the same entries, and share one tuple of them."""
    shared: dict[tuple[int, ...], tuple[int, ...]] = {}
    out = {}
    for key in keys:
        branch = objects.get(key)
        try:
            starts = tuple(int(x) for x in branch.entry_offsets)
            out[key] = _Header(int(branch.uncompressed_bytes), int(branch.num_baskets), shared.setdefault(starts, starts))
        except Exception:  # noqa: BLE001 - not kept: asked for, the file is opened again
            continue
    return out


class RootFile:
    """One ROOT file and the tree to read from it.

    ``origin`` says where the file was named (``files.txt:2``) so that errors can point there.
    """

    def __init__(
        self,
        path: str,
        tree: str = "Events",
        *,
        origin: str = "",
        retries: int = 3,
        retry_wait: float = 0.5,
        open_options: dict | None = None,
        read_threads: int = 0,
    ):
        self.path = path
        self.tree_name = tree
        self.origin = origin
        self.retries = retries if is_remote(path) else 0
        self.retry_wait = retry_wait
        self.open_options = dict(open_options or {})
        self.decompression_executor = decompression_executor(read_threads)
        self._file = None
        self._tree = None
        self._num_entries: int | None = None
        self._reopen = threading.Lock()
        self._branches: BranchTable | None = None
        self._objects: dict[str, Any] = {}  # uproot's branch (or field) of each key, for this opening
        self._paths: dict[str, str] = {}  # full path in the tree of each key
        self._resolvable: dict[str, bool] = {}  # whether uproot finds the branch by its full path
        self._bound_to = None  # the opening those belong to
        self._header: dict[str, _Header] = {}  # what release() kept of the branches' metadata
        self.is_ntuple = False  # an RNTuple (ROOT 6.34+) instead of a TTree
        self._open()

    # -- opening ------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.path} (from {self.origin})" if self.origin and self.origin not in self.path else self.path

    def _open(self) -> None:
        opened = self._retrying(self._open_file, "open")
        try:
            tree = self._find_tree(opened)
        except BaseException:
            opened.close()
            raise
        if self._num_entries is None:
            self._num_entries = int(tree.num_entries)
        self._tree = tree
        # last: _ensure_open looks at it without the lock, and the range threads of a pass that
        # find it set use the tree at once
        self._file = opened

    def _ensure_open(self) -> None:
        """Reopen a file that :meth:`release` closed."""
        if self._file is None:
            with self._reopen:
                if self._file is None:
                    self._open()

    def release(self) -> None:
        """Close the file but keep what is known of it; the next read reopens it. A file read
        through a memory map keeps every page it read resident until it is closed, so a pass
        over many files releases each one when done with it.

        What is kept is small: the branch table, each branch's full path, and for the branches
        classified as features so far, what planning reads from the header (:class:`_Header`).
        uproot's objects of the opening hold the whole tree's metadata and streamers (11 MB for
        a file of 1,033 branches): kept for every released file, a Dataset of 500 NanoAOD-like
        files would hold gigabytes before reading an event."""
        self.close()

    def _open_file(self):
        bound_retained_memory()  # before the first read: see mlaas4hep/heap.py
        options = dict(self.open_options)
        if self.path.startswith(("root://", "xroot://")):
            _configure_xrootd(self.open_options.get("timeout"), self.where)
            # uproot 5.7's XRootDSource closes its file in the middle of iterate(); this one does not
            options.setdefault("handler", uproot.source.xrootd.MultithreadedXRootDSource)
            options.setdefault("num_workers", XROOTD_HANDLES)
        if not is_remote(self.path):
            if not os.path.exists(self.path):
                raise DataError("ROOT file not found", where=self.where)
            if os.path.isdir(self.path):
                raise DataError("expected a ROOT file, got a folder", where=self.where)
        try:
            return uproot.open(self.path, **options)
        except FileNotFoundError:
            raise DataError("ROOT file not found", where=self.where) from None
        except ValueError as err:
            raise DataError(f"not a readable ROOT file: {_first_line(err)}", where=self.where) from None
        except _DAMAGE as err:
            raise DataError(f"corrupt ROOT file: {_first_line(err)}", where=self.where) from None
        except OSError as err:
            if is_remote(self.path) and _transient(err):
                raise  # retried by _retrying
            # uproot reads past the end of a truncated file's header or directory
            raise DataError(f"corrupt or truncated ROOT file: {_first_line(err)}", where=self.where) from None

    def _find_tree(self, rfile):
        try:
            classnames = rfile.classnames(recursive=True)
        except (OSError, ValueError, *_DAMAGE) as err:
            raise DataError(f"corrupt or truncated ROOT file (cannot read its directory): {_first_line(err)}",
                            where=self.where) from None
        trees = sorted({k.rsplit(";", 1)[0] for k, c in classnames.items() if c in ("TTree", "TNtuple", "TNtupleD")})
        if self.tree_name not in trees:
            ntuples = {k.rsplit(";", 1)[0]: c for k, c in classnames.items() if c.endswith("::RNTuple")}
            if ntuples.get(self.tree_name) == "ROOT::RNTuple":
                self.is_ntuple = True
                try:
                    return rfile[self.tree_name]
                except (OSError, ValueError, *_DAMAGE) as err:
                    raise DataError(f"corrupt RNTuple {self.tree_name!r}: {_first_line(err)}", where=self.where) from None
            if self.tree_name in ntuples:
                raise DataError(f"'{self.tree_name}' is an RNTuple in ROOT's experimental format "
                                f"({ntuples[self.tree_name]}, ROOT before 6.34), which uproot cannot read",
                                where=self.where, hint="write the data again as a TTree")
            readable = trees + sorted(n for n, c in ntuples.items() if c == "ROOT::RNTuple")
            hint = did_you_mean(self.tree_name, readable)
            listing = ", ".join([repr(t) for t in trees] + [f"{n!r} (RNTuple)" for n in readable[len(trees):]])
            listing = listing or "none"
            raise DataError(
                f"no tree {self.tree_name!r} in this file (trees in it: {listing})", where=self.where,
                hint=hint or "set 'branch' in params.json (--tree for the branches verb) to the tree name",
            )
        try:
            return rfile[self.tree_name]
        except (OSError, ValueError, *_DAMAGE) as err:
            raise DataError(f"corrupt tree {self.tree_name!r}: {_first_line(err)}", where=self.where) from None

    def _retrying(self, fn: Callable[[], T], what: str) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except DataError:
                raise
            except Exception as err:  # noqa: BLE001 - classified just below, re-raised when not transient
                if not (is_remote(self.path) and _transient(err)):
                    raise
                attempt += 1
                if attempt > self.retries:
                    raise DataError(
                        f"could not {what} after {self.retries + 1} attempts: {_first_line(err)}", where=self.where,
                        hint="is the server reachable?",
                    ) from None
                time.sleep(self.retry_wait * 2 ** (attempt - 1))

    def close(self) -> None:
        if self._file is not None:
            if self._bound_to is self._tree and not self.is_ntuple:
                table = self._branches
                usable = [k for k in (table.classified() if table is not None else ()) if table[k].kind is not None]
                self._header.update(_headers(self._objects, usable))
            self._file.close()
            self._file = self._tree = None
        self._objects, self._resolvable, self._bound_to = {}, {}, None

    def __enter__(self) -> RootFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- what is in it ------------------------------------------------------------------------

    @property
    def num_entries(self) -> int:
        if self._num_entries is None:
            self._ensure_open()
        return self._num_entries

    @property
    def branches(self) -> BranchTable:
        """Every leaf branch of the tree, in file order, keyed by its name, or by its full path
        where several leaves share that name (16 detector objects with the same members). For an
        RNTuple, its top-level fields. Each branch is classified (:func:`branch_info`) when first
        looked at: a selection of 40 branches of a 1,033-branch tree classifies 40 (uproot works
        out a branch's interpretation then, the most of opening a wide tree)."""
        if self._branches is None:
            self._bind()
            self._branches = BranchTable(self._objects, self._classify_key)
        return self._branches

    def _discover(self) -> None:
        """The keys of the leaves, with uproot's object and full path of each, for this opening."""
        objects: dict[str, Any] = {}
        paths: dict[str, str] = {}
        if self.is_ntuple:
            for name, fld in self._tree.iteritems(recursive=False):
                objects[name], paths[name] = fld, name
        else:
            leaves = [(path, b, b.name) for path, b in self._tree.iteritems(recursive=True, full_paths=True)
                      if not b.branches]  # a branch with sub-branches is a container, not a leaf
            shared = Counter(name for _, _, name in leaves)
            for path, b, name in leaves:
                key = name if shared[name] == 1 else path
                if key in objects:  # two parents with one name (a Delphes file with two 'Particle')
                    key = next(f"{key}#{i}" for i in range(2, len(leaves) + 2) if f"{key}#{i}" not in objects)
                objects[key], paths[key] = b, path
        self._objects, self._paths, self._resolvable, self._bound_to = objects, paths, {}, self._tree

    def _classify_key(self, key: str) -> BranchInfo:
        self._bind()
        if self.is_ntuple:
            return field_info(self._objects[key], key)
        return branch_info(self._objects[key], key, self._paths[key], self.num_entries)

    def _bind(self) -> None:
        """uproot's objects of this opening of the file (a released file is opened again)."""
        self._ensure_open()
        if self._bound_to is not self._tree:
            self._discover()

    def _is_resolvable(self, key: str) -> bool:
        """Whether uproot finds the branch ``key`` by its full path (not so for the second of two
        parents with one name)."""
        found = self._resolvable.get(key)
        if found is None:
            found = self._resolvable[key] = self.is_ntuple or self._lookup(self._paths[key]) is self._objects[key]
        return found

    def _metadata(self, names: Iterable[str] = ()) -> Mapping[str, Any]:
        """What the file's header says of the branches ``names`` (basket starts, sizes): uproot's
        objects while the file is open, else what :meth:`release` kept of them (a multi-file
        Dataset releases every file once it knows its branches; opening it again only to plan
        the ranges of a pass on Dask workers cost the client 20 to 40 ms of CPU a file). A
        released file that kept nothing of one of ``names`` is opened again."""
        if self.is_ntuple:
            return self.branches  # RNTuple fields: which there are, no sizes
        if self._objects or any(n in self.branches and n not in self._header for n in names):
            self._bind()
            return self._objects
        return self._header

    def _lookup(self, path: str) -> Any:
        try:
            return self._tree[path]
        except Exception:  # noqa: BLE001 - uproot's KeyInFileError, or a name it cannot parse
            return None

    def check_branches(self, names: Iterable[str], what: str) -> None:
        """Raise a DataError naming the first of ``names`` missing from the tree."""
        for name in names:
            if name not in self.branches:
                raise DataError(f"no branch {name!r} ({what}) in tree {self.tree_name!r}", where=self.where,
                                hint=self.missing_hint(name))

    def missing_hint(self, name: str) -> str | None:
        """What to write instead of a branch name that is not a key: the full paths when the name
        is shared by several leaves, else the closest names."""
        paths = [info.path for info in self.branches.values() if info.path.rsplit("/", 1)[-1] == name]
        if len(paths) > 1:
            shown = ", ".join(repr(p) for p in paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
            return f"{len(paths)} branches are named {name!r}; name one by its full path: {shown}"
        return did_you_mean(name, self.branches)

    def bytes_per_entry(self, names: Iterable[str]) -> float:
        """Uncompressed bytes per entry of the branches ``names`` (from the metadata; no read)."""
        entries = self.num_entries
        if not entries:
            return 0.0
        names = list(names)
        objects = self._metadata(names)
        if self.is_ntuple:  # no per-field sizes in uproot's RNTuple model: assume 8 bytes a field
            return 8.0 * len([n for n in names if n in objects])
        return sum(int(objects[n].uncompressed_bytes) for n in names if n in objects) / entries

    def stream_bytes(self, names: Iterable[str], step: int) -> float:
        """About the memory that reading ``names`` in blocks of ``step`` entries holds for this
        file (from the metadata; no read): two blocks, and one decompressed basket per branch,
        which uproot keeps while a block ends inside it."""
        names = list(names)
        objects = self._metadata(names)
        baskets = 0.0 if self.is_ntuple else sum(int(objects[n].uncompressed_bytes) / max(1, objects[n].num_baskets)
                                                 for n in names if n in objects)
        return baskets + 2 * step * self.bytes_per_entry(names)

    def cluster_starts(self, names: Iterable[str]) -> list[int]:
        """Entries where every one of the branches ``names`` starts a new basket (from the
        metadata; no read): ranges between them never decompress a basket twice."""
        names = list(names)
        objects = self._metadata(names)
        if self.is_ntuple:
            return [0, self.num_entries]
        common: set[int] | None = None
        for name in names:
            if name in objects:
                starts = {int(x) for x in objects[name].entry_offsets}
                common = starts if common is None else common & starts
        return sorted(common) if common else [0, self.num_entries]

    def identity(self) -> dict[str, Any]:
        """What identifies this file's content, for cache keys: path, size and modification
        time for a local file; size, ROOT UUID and end offset for a remote one."""
        if not is_remote(self.path):
            st = os.stat(self.path)
            return {"path": self.path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self._ensure_open()
        return {
            "path": self.path,
            "size": int(self._file.file.source.num_bytes or 0) if hasattr(self._file.file.source, "num_bytes") else None,
            "uuid": str(self._file.file.uuid),
            "end": int(self._file.file.fEND),
        }

    # -- reading ------------------------------------------------------------------------------

    def iterate(
        self, names: Sequence[str], start: int = 0, stop: int | None = None, step: int = 100_000
    ) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """``(start, stop, {name: array})`` for consecutive entry ranges of at most ``step``.

        Flat branches come as numpy arrays, jagged ones as awkward arrays. A remote fault in
        the middle reopens the file and continues from the first entry not yet delivered.
        """
        stop = self.num_entries if stop is None else min(stop, self.num_entries)
        self._ensure_open()
        names = list(dict.fromkeys(names))
        self.check_branches(names, "to read")
        pos, attempt = start, 0
        while pos < stop:
            try:
                for n, arrays in self._blocks(names, pos, stop, step):
                    yield pos, pos + n, {k: _as_numpy_if_flat(v) for k, v in arrays.items()}
                    pos += n
                    attempt = 0
                return
            except DataError:
                raise
            except Exception as err:  # noqa: BLE001 - classified just below
                if is_remote(self.path) and _transient(err) and attempt < self.retries:
                    attempt += 1
                    time.sleep(self.retry_wait * 2 ** (attempt - 1))
                    self.close()
                    self._open()  # retries on its own; a DataError here means the server is gone
                    continue
                raise self._read_error(err, names, pos, min(stop, pos + step)) from None

    def _blocks(self, names: Sequence[str], start: int, stop: int, step: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(n, {key: array})`` blocks of ``names`` from ``start``.

        Branches are asked for by full path with their interpretation, so uproot neither parses
        the names as expressions nor searches the tree for them (which costs minutes on trees of
        thousands of leaves), and two leaves with one short name stay two arrays. A leaf whose
        path does not lead to it (two parents with one name) is read from its branch object.
        """
        self._bind()
        paths = self._paths
        if self.is_ntuple:
            wanted = set(names)
            for arrays in self._tree.iterate(filter_name=wanted.__contains__, entry_start=start, entry_stop=stop,
                                             step_size=step, library="ak"):
                yield len(arrays), {k: arrays[k] for k in names}
            return
        direct = [k for k in names if self._is_resolvable(k)]
        by_object = [k for k in names if not self._is_resolvable(k)]
        key_of = {paths[k]: k for k in direct}

        def add_objects(a: int, b: int, arrays: dict[str, Any]) -> dict[str, Any]:
            for k in by_object:
                arrays[k] = self._objects[k].array(entry_start=a, entry_stop=b, library="ak",
                                                   decompression_executor=self.decompression_executor)
            return arrays

        if not direct:
            for a in range(start, stop, step):
                b = min(a + step, stop)
                yield b - a, add_objects(a, b, {})
            return
        expressions = [(paths[k], self._objects[k].interpretation) for k in direct]
        pos = start
        for arrays in self._tree.iterate(expressions, entry_start=start, entry_stop=stop, step_size=step,
                                         library="ak", how=dict, decompression_executor=self.decompression_executor):
            n = len(next(iter(arrays.values())))
            yield n, add_objects(pos, pos + n, {key_of[p]: v for p, v in arrays.items()})
            pos += n

    def arrays(self, names: Sequence[str], start: int = 0, stop: int | None = None) -> dict[str, Any]:
        """All of ``[start, stop)`` at once (for previews and tests; streaming uses iterate)."""
        parts = list(self.iterate(names, start, stop, step=max(1, (stop or self.num_entries) - start)))
        if not parts:
            return {name: np.empty(0) for name in names}
        return parts[0][2] if len(parts) == 1 else {
            name: _concatenate([p[2][name] for p in parts]) for name in names
        }

    def _read_error(self, err: BaseException, names: Sequence[str], start: int, stop: int) -> DataError:
        detail = _first_line(err)
        if is_remote(self.path) and _transient(err):
            return DataError(f"remote read of entries {start}..{stop} failed after {self.retries + 1} attempts: "
                             f"{detail}", where=self.where, hint="is the server reachable?")
        # some branches failing on their own is uproot misreading them; all failing, the file
        failing = self.unreadable(names, start, stop) if len(names) > 1 else {}
        if failing and len(failing) < len(names):
            return BranchReadError(failing, self.tree_name, start, stop, where=self.where)
        which = f" (branch {names[0]!r})" if len(names) == 1 else ""
        return DataError(f"corrupt or truncated ROOT file: reading entries {start}..{stop} of tree "
                         f"{self.tree_name!r}{which} failed: {detail}", where=self.where)

    def unreadable(self, names: Sequence[str], start: int, stop: int) -> dict[str, str]:
        """Which of ``names`` uproot cannot read in entries [start, stop), each with why: every
        branch is read on its own (only after reading them together failed)."""
        failing = {}
        self._bind()
        for name in names:
            try:
                if self.is_ntuple:
                    self._tree.arrays(filter_name=[name], entry_start=start, entry_stop=stop, library="ak")
                else:
                    self._objects[name].array(entry_start=start, entry_stop=stop, library="ak")
            except Exception as err:  # noqa: BLE001 - this is the question being asked
                if _file_damage(err) or (is_remote(self.path) and _transient(err)):
                    return {}  # the file's bytes, not uproot's reading of one branch
                failing[name] = _first_line(err)
        return failing


class BranchReadError(DataError):
    """Branches uproot cannot read (a misread basket, an unknown streamer), by name with why."""

    def __init__(self, failing: dict[str, str], tree: str, start: int, stop: int, *, where: str):
        self.failing = dict(failing)
        self._args = (self.failing, tree, start, stop, where)
        shown = "; ".join(f"{name!r}: {why}" for name, why in list(failing.items())[:3])
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        super().__init__(
            f"tree {tree!r}: uproot cannot read branch{'es' if len(failing) > 1 else ''} {shown}{more} "
            f"(entries {start}..{stop})", where=where,
            hint="leave it out with exclude_branches in params.json")

    def __reduce__(self):  # across processes (Dask workers) with its branches, not only its text
        failing, tree, start, stop, where = self._args
        return _branch_read_error, (failing, tree, start, stop, where)


def _branch_read_error(failing: dict[str, str], tree: str, start: int, stop: int, where: str) -> BranchReadError:
    return BranchReadError(failing, tree, start, stop, where=where)


_EXECUTORS: dict[int, Any] = {}
_EXECUTORS_LOCK = threading.Lock()


def decompression_executor(threads: int = 0):
    """A process-wide pool that decompresses baskets in parallel (zlib, lz4 and zstd release the
    GIL, so this scales with cores). ``threads``: 0 = one per CPU (at most 8), 1 = none."""
    if threads == 0:
        threads = min(8, os.cpu_count() or 1)
    if threads <= 1:
        return None
    with _EXECUTORS_LOCK:
        if threads not in _EXECUTORS:
            _EXECUTORS[threads] = uproot.ThreadPoolExecutor(threads)
        return _EXECUTORS[threads]


def _configure_xrootd(timeout: float | None, where: str) -> None:
    """Bound the XRootD client's own connection retries by our timeout (our retries do the rest),
    unless the user chose them with XRD_CONNECTIONWINDOW / XRD_CONNECTIONRETRY."""
    xrd = xrootd.client(where)
    if timeout and "XRD_CONNECTIONWINDOW" not in os.environ:
        xrd.EnvPutInt("ConnectionWindow", max(1, int(round(timeout))))
    if "XRD_CONNECTIONRETRY" not in os.environ:
        xrd.EnvPutInt("ConnectionRetry", 1)


def _as_numpy_if_flat(array: Any) -> Any:
    if isinstance(array, ak.Array) and array.ndim == 1:
        layout = array.layout
        # the numpy array under uproot's plain numbers, without ak.to_numpy's dispatch (25 us a
        # call: a second per thousand branches per block)
        if isinstance(layout, ak.contents.NumpyArray) and not layout.inner_shape and layout.parameter("__array__") is None:
            return layout.data
        return ak.to_numpy(array)
    return array


def _concatenate(parts: list[Any]) -> Any:
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return ak.concatenate(parts)


def _file_damage(err: BaseException) -> bool:
    """Bytes missing or not decompressing (a truncated or corrupt file), as opposed to uproot
    misreading the bytes of one branch (a wrong entry count, an unknown streamer)."""
    if isinstance(err, (OSError, EOFError, *inflate.ERRORS)):
        return True
    text = str(err).lower()
    return any(s in text for s in ("chunk of length", "decompress", "compression", "truncated", "lz4", "zstd", "lzma"))


def _first_line(err: BaseException) -> str:
    """The first paragraph of an error's text on one line (uproot wraps its messages over
    several lines: "expected Chunk of length 403,\nreceived 0 bytes ...\nfor file path ...");
    the file path is dropped, the error's ``where`` names the file."""
    text = str(err).strip() or type(err).__name__
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            break
        if not line.startswith(("for file path ", "in file ")):
            lines.append(line)
    return " ".join(lines) or text.splitlines()[0]
