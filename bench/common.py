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


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
