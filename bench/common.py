"""Shared pieces of the benchmarks: seeded data files and the preproc under test."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

DATA = Path(__file__).parent / "data"

# 2 cuts and 1 new branch, as the issue asks
PREPROC = {
    "new_branch": {"log_partonE": {"def": "log(partonE)", "type": "jagged"}},
    "flat_cut": {"nLeptons": {"cut": "nLeptons <= 2"}},
    "jagged_cut": {"jetPt": {"cut": ["jetPt > 30", "any"]}},
}
PARAMS = {"chunk_size": 100_000, "identifier": ["run", "event", "luminosityBlock"], "shuffle": True}


def ensure_file(name: str, n_events: int, seed: int, signal: bool = True) -> Path:
    """Generate ``DATA/name`` (ttH-like, ZLIB) once; later runs reuse it."""
    from mlaas4hep.datagen import write_tth

    path = DATA / name
    if not path.exists():
        start = time.perf_counter()
        print(f"generating {path} ({n_events:,} events, seed {seed}) ...", flush=True)
        write_tth(path, n_events, signal=signal, seed=seed)
        print(f"  done in {time.perf_counter() - start:.1f}s, {path.stat().st_size / 1e6:.0f} MB", flush=True)
    return path


#: Code for a child process: ``peak_mb()``, its own peak resident memory. ``ru_maxrss`` is not
#: that: a child starts with its parent's resident size at the fork as its maximum (Linux keeps it
#: across exec), so a bench whose parent had generated data reported the parent's size. VmHWM
#: belongs to the process's own address space, which exec replaces.
PEAK_MB = r"""
def peak_mb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: may include the parent's
"""


def compile_sources() -> str:
    """Byte-compile the engine's sources once, as installing a wheel does.

    uproot and awkward were installed by pip, which wrote their bytecode; this project is
    installed editable, so with ``PYTHONDONTWRITEBYTECODE`` set (as on the development machine
    and in CI) every fresh process compiled ``mlaas4hep`` from source again (about 60 ms a
    process), a cost no installed copy pays. Returns a note for the bench's header."""
    import compileall

    import mlaas4hep

    package = Path(mlaas4hep.__file__).parent
    ok = compileall.compile_dir(str(package), quiet=2)
    return f"mlaas4hep byte-compiled{'' if ok else ' (partly)'}, as installed"


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
