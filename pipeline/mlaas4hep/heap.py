"""Keep memory that reading freed from staying resident (glibc's allocator).

glibc serves each thread from an arena of its own and keeps a freed region for reuse rather
than give it back. How much it keeps grows with the largest block freed so far (its dynamic
``mmap`` threshold, up to 32 MB, and a trim threshold of twice that), and a thread's arena is
only ever trimmed from the top when more than that is free there. A read pass over a wide file
(a thousand branches; uproot reads the file in ranges of several MB, in a pool of decompression
threads) thus leaves 60 MB and more resident in arenas that hold almost nothing, and the chunks
built next come on top.

:func:`bound_retained_memory` fixes the thresholds once, before the first read: blocks of 4 MB
and more are mapped and unmapped on their own, and an arena with more than 8 MB free at its top
gives it back. Smaller blocks are reused as before. Where the user set those thresholds
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``), or the C library
is not glibc, nothing is changed. :func:`release_free_memory` returns what is free in every
arena now (``malloc_trim``), after a pass.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 8 << 20


@functools.cache
def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # the C library this process already runs on (ctypes.util.find_library would run
        # ldconfig in a subprocess to find it again)
        libc = ctypes.CDLL(None)
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (not musl)
    except (OSError, AttributeError):
        return None
    return libc


def _start_environment() -> dict[str, str]:
    """The environment this process started with, which is what glibc read its settings from
    (a variable set later, as Dask's nanny sets MALLOC_TRIM_THRESHOLD_ for the workers it
    spawns, changed nothing in this process)."""
    try:
        raw = open("/proc/self/environ", "rb").read()
    except OSError:
        return dict(os.environ)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _user_tuned() -> bool:
    env = _start_environment()
    tunables = env.get("GLIBC_TUNABLES", "")
    return ("MALLOC_MMAP_THRESHOLD_" in env or "MALLOC_TRIM_THRESHOLD_" in env
            or "mmap_threshold" in tunables or "trim_threshold" in tunables)


@functools.cache
def bound_retained_memory() -> bool:
    """Fix glibc's mmap and trim thresholds (once per process); whether they were set."""
    libc = _glibc()
    if libc is None or _user_tuned():
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release_free_memory() -> bool:
    """Return the free memory of every arena to the system now; whether any was returned
    (False where the C library cannot)."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
