"""ZLIB baskets inflated by ISA-L where it is installed: the same bytes, about 1.7x faster.

Most ROOT files in use are ZLIB-compressed (ROOT's default for years, and what CMS NanoAOD
wrote before LZMA/ZSTD). uproot inflates them with Python's ``zlib``, which is most of the cost
of reading them: on ``bench/stream.py``'s file, 1.65 of 2.9 s of a raw ``uproot.iterate``
pass. ISA-L's inflate (the ``isal`` package, a dependency of this project) gives the same
bytes (inflate is exact: both check the stream's Adler-32) in about half the time, and like
``zlib`` it releases the GIL, so the decompression threads still run side by side.

uproot can inflate with ISA-L itself; :func:`configure` switches it on when this module is
imported, unless the user chose otherwise:

- ``MLAAS4HEP_INFLATE=zlib`` keeps Python's ``zlib`` (``isal``, the default, uses ISA-L where
  the package imports, else ``zlib``);
- a library already chosen in uproot (its ZLIB decompressor's ``library`` not ``"zlib"``) is
  left as it is.

The choice is uproot's, so it holds for the whole process: for the user's own uproot reads
too, which get the same bytes sooner. ISA-L signals a damaged stream with its own exception
class, not ``zlib.error``: :data:`ERRORS` lists both, and the reader treats either as a
damaged file, never as a branch uproot cannot read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import zlib
from collections.abc import Iterator

log = logging.getLogger("mlaas4hep")

ENV = "MLAAS4HEP_INFLATE"
CHOICES = ("isal", "zlib")

try:
    from isal import isal_zlib as _isal_zlib
except ImportError:  # not installed (or no wheel for this platform): Python's zlib
    _isal_zlib = None

#: What inflating a damaged ZLIB stream raises, with either library.
ERRORS: tuple[type[BaseException], ...] = (zlib.error,) + ((_isal_zlib.error,) if _isal_zlib is not None else ())


def _decompressor():
    """uproot's ZLIB decompressor (the object whose ``library`` picks the inflate), or None in
    an uproot that has none."""
    import uproot.compression

    found = getattr(uproot.compression, "_decompress_ZLIB", None)
    return found if found is not None and hasattr(found, "library") else None


def configure() -> str:
    """Make uproot inflate ZLIB baskets with ISA-L (see the module's text); returns the library
    in use: ``"isal"`` or ``"zlib"`` (or what the user had set in uproot)."""
    wanted = os.environ.get(ENV, "isal").strip().lower() or "isal"
    decompressor = _decompressor()
    if decompressor is None:
        return "zlib"
    if decompressor.library != "zlib":
        return str(decompressor.library)  # the user's own choice in uproot
    if wanted not in CHOICES:
        log.warning("mlaas4hep: %s=%r is not one of %s: ZLIB baskets are inflated with Python's zlib",
                    ENV, wanted, ", ".join(CHOICES))
        return "zlib"
    if wanted == "isal" and _isal_zlib is not None:
        decompressor.library = "isal"
    return str(decompressor.library)


def in_use() -> str:
    """The library uproot inflates ZLIB baskets with now."""
    decompressor = _decompressor()
    return "zlib" if decompressor is None else str(decompressor.library)


@contextlib.contextmanager
def using(library: str) -> Iterator[None]:
    """Inflate ZLIB baskets with ``library`` (``"zlib"`` or ``"isal"``) inside the block, in the
    whole process (to compare the two, or to time uproot as it comes); what was set before comes
    back after."""
    decompressor = _decompressor()
    if decompressor is None:
        yield
        return
    before, decompressor.library = decompressor.library, library
    try:
        yield
    finally:
        decompressor.library = before
