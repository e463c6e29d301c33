"""Seeded, realistic-looking ttH-like signal and background ROOT files, written with uproot.

The branches follow the paper's ttH analysis (``nJets``, ``nLeptons``, ``partonE``,
``partonPt``) plus more of the usual: jets and partons as variable-length lists (mean
multiplicity about 6, at most 20), missing energy, HT, a NaN-bearing leading-lepton pair of
branches (NaN when there is no lepton), a trigger flag, and the event identifiers ``run``,
``luminosityBlock``, ``event``. Signal and background differ in several distributions, so that
a classifier can separate them well but not perfectly.

What a detector would record: jets with pT > 25 GeV inside the calorimeter and tracker
acceptance |η| < 2.4 (b-tagging needs the tracker), with a mass (``jetM``); the leading lepton
with pT > 20 GeV and |η| < 2.5. Partons are generator-level and keep their own η.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

MAX_MULTIPLICITY = 20
TREE = "Events"
JET_PT_MIN, JET_ETA_MAX = 25.0, 2.4
LEPTON_PT_MIN, LEPTON_ETA_MAX = 20.0, 2.5

def _within(rng: np.random.Generator, draw, limit: float, n: int) -> np.ndarray:
    """``n`` values of ``draw(k)`` with |value| < limit (those outside are drawn again)."""
    values = draw(n)
    for _ in range(100):
        outside = np.abs(values) >= limit
        if not outside.any():
            return values
        values[outside] = draw(int(outside.sum()))
    return np.clip(values, -np.nextafter(limit, 0), np.nextafter(limit, 0))

#: The units of the generated branches, for axis labels (``Workbench(units=UNITS)``): uproot
#: writes no branch titles, so the files cannot carry them.
UNITS = {"HT": "GeV", "MET": "GeV", "MET_phi": "rad", "lep1Pt": "GeV", "lep1Phi": "rad", "jetPt": "GeV",
         "jetM": "GeV", "jetPhi": "rad", "partonE": "GeV", "partonPt": "GeV", "partonPhi": "rad"}

#: The paper's Figure 4 preproc.json, as published.
FIGURE4_PREPROC = {
    "new_branch": {
        "log_partonE": {
            "def": "log(partonE)", "type": "jagged",
            "cut_1": ["log_partonE<6.31", "any"], "cut_2": ["log_partonE>5.85", "all"],
            "remove": "False", "keys_to_remove": ["partonE"],
        },
        "nJets_square": {
            "def": "nJets**2", "type": "flat", "cut": "1<=nJets_square<=16",
            "remove": "False", "keys_to_remove": ["nJets"],
        },
    },
    "flat_cut": {"nLeptons": {"cut": "0<=nLeptons<=2", "remove": "False"}},
    "jagged_cut": {"partonPt": {"cut": ["partonPt>200", "all"], "remove": "False"}},
}


#: The demo's model.py: a small Keras classifier, the original ``def model(idim)`` contract.
DEMO_MODEL = '''"""The demo's model: a small fully connected Keras classifier for idim input features."""
import keras


def model(idim):
    inputs = keras.Input(shape=(idim,))
    x = keras.layers.Dense(64, activation="relu")(inputs)
    x = keras.layers.Dense(32, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    net = keras.Model(inputs, outputs)
    net.compile(optimizer=keras.optimizers.Adam(2e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return net
'''


def _counts(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    return np.minimum(rng.poisson(mean, n), MAX_MULTIPLICITY).astype(np.int32)


def make_events(n: int, signal: bool, rng: np.random.Generator, first_event: int = 0,
                separation: float = 1.0) -> dict[str, ak.Array | np.ndarray]:
    """``n`` events as arrays: identifiers, flat branches and the ``jet`` / ``parton`` records.

    ``separation`` scales how far signal distributions sit from background ones (1 = the demo's).
    """
    f32 = np.float32

    def pick(sig: float, bkg: float) -> float:
        return bkg + (sig - bkg) * separation if signal else bkg

    n_jets = _counts(rng, pick(6.5, 5.5), n)
    n_partons = _counts(rng, 6.0, n)
    n_jet_total, n_parton_total = int(n_jets.sum()), int(n_partons.sum())

    jet_pt = JET_PT_MIN + rng.exponential(pick(62.0, 42.0), n_jet_total)
    jet_eta = _within(rng, lambda k: rng.normal(0.0, max(0.2, pick(1.3, 1.7)), k), JET_ETA_MAX, n_jet_total)
    jet_m = jet_pt * rng.uniform(0.04, 0.18, n_jet_total)
    jet_phi = rng.uniform(-np.pi, np.pi, n_jet_total)
    b_fraction = min(0.95, pick(0.38, 0.12))
    is_b = rng.random(n_jet_total) < b_fraction
    jet_btag = np.where(is_b, rng.beta(5, 1.5, n_jet_total), rng.beta(1.2, 5, n_jet_total))

    log_e = rng.normal(pick(6.12, 6.02), 0.22, n_parton_total)
    parton_eta = rng.normal(0.0, 0.55, n_parton_total)
    parton_e = np.exp(log_e)
    parton_pt = parton_e / np.cosh(parton_eta)
    parton_phi = rng.uniform(-np.pi, np.pi, n_parton_total)

    jets = ak.zip({
        "Pt": ak.unflatten(jet_pt.astype(f32), n_jets),
        "Eta": ak.unflatten(jet_eta.astype(f32), n_jets),
        "Phi": ak.unflatten(jet_phi.astype(f32), n_jets),
        "M": ak.unflatten(jet_m.astype(f32), n_jets),
        "Btag": ak.unflatten(jet_btag.astype(f32), n_jets),
    })
    partons = ak.zip({
        "E": ak.unflatten(parton_e.astype(f32), n_partons),
        "Pt": ak.unflatten(parton_pt.astype(f32), n_partons),
        "Eta": ak.unflatten(parton_eta.astype(f32), n_partons),
        "Phi": ak.unflatten(parton_phi.astype(f32), n_partons),
    })

    n_leptons = np.minimum(rng.poisson(pick(1.3, 0.9), n), 4).astype(np.int32)
    lep1_pt = np.where(n_leptons > 0, LEPTON_PT_MIN + rng.exponential(pick(45.0, 30.0), n), np.nan)
    lep1_eta = np.where(n_leptons > 0, _within(rng, lambda k: rng.normal(0.0, 1.1, k), LEPTON_ETA_MAX, n), np.nan)
    lep1_phi = np.where(n_leptons > 0, rng.uniform(-np.pi, np.pi, n), np.nan)
    ht = ak.to_numpy(ak.sum(jets.Pt, axis=1)).astype(np.float64)
    met = rng.exponential(pick(55.0, 32.0), n)
    events = np.arange(first_event, first_event + n, dtype=np.int64)
    return {
        "run": np.full(n, 1, np.int32),
        "luminosityBlock": (events // 1000 + 1).astype(np.int32),
        "event": events + 1,
        "nLeptons": n_leptons,
        "nBJets": ak.to_numpy(ak.sum(jets.Btag > 0.5, axis=1)).astype(np.int32),
        "HT": ht.astype(f32),
        "MET": met.astype(f32),
        "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(f32),
        "lep1Pt": lep1_pt.astype(f32),
        "lep1Eta": lep1_eta.astype(f32),
        "lep1Phi": lep1_phi.astype(f32),
        "passTrigger": (rng.random(n) < min(0.99, pick(0.9, 0.7))),
        "weight": rng.normal(1.0, 0.05, n).astype(f32),
        "jet": jets,
        "parton": partons,
    }


def _branch_types(sample: dict) -> dict:
    return {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in sample.items()}


def write_tth(path: str | os.PathLike, n_events: int, signal: bool, seed: int = 0,
              batch: int = 20_000, compression: str = "ZLIB", separation: float = 1.0) -> Path:
    """Write ``n_events`` ttH-like events to ``path`` (tree ``Events``), in baskets of ``batch``.

    The jet record's counter is ``nJets`` and the parton record's ``nPartons``; their fields
    become ``jetPt``, ``partonE`` and so on.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1 if signal else 0])
    codec = {"ZLIB": uproot.ZLIB(1), "LZ4": uproot.LZ4(1), "ZSTD": uproot.ZSTD(1), "LZMA": uproot.LZMA(1),
             "NONE": None}[compression.upper()]
    tmp = path.with_name(path.name + ".part")
    with uproot.recreate(tmp, compression=codec) as out:
        tree = None
        for first, size in _batches(n_events, batch):
            events = make_events(size, signal, rng, first, separation)
            if tree is None:
                tree = out.mktree(
                    TREE, _branch_types(events),
                    counter_name=lambda counted: {"jet": "nJets", "parton": "nPartons"}.get(counted, "n" + counted),
                    field_name=lambda outer, inner: outer + inner,
                    title="ttH-like " + ("signal" if signal else "background"),
                )
            tree.extend(events)
    os.replace(tmp, path)
    return path


def _batches(n: int, batch: int) -> Iterator[tuple[int, int]]:
    for first in range(0, n, batch):
        yield first, min(batch, n - first)


def write_demo_inputs(folder: str | os.PathLike, n_events: int = 50_000, seed: int = 42) -> dict[str, Path]:
    """The demo's inputs in ``folder``: signal.root, background.root, files.txt, labels.txt,
    params.json, preproc.json (the paper's Figure 4) and model.py. Existing ROOT files are kept."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sig, bkg = folder / "signal.root", folder / "background.root"
    if not sig.exists():
        write_tth(sig, n_events, signal=True, seed=seed)
    if not bkg.exists():
        write_tth(bkg, n_events, signal=False, seed=seed)
    (folder / "files.txt").write_text("# ttH-like signal and background\nsignal.root\nbackground.root\n")
    (folder / "labels.txt").write_text("1\n0\n")
    params = {
        "nevts": -1, "chunk_size": 10000, "epochs": 5, "batch_size": 256, "shuffle": True,
        "branch": TREE, "identifier": ["run", "event", "luminosityBlock"],
        "selected_branches": "", "exclude_branches": ["weight"], "redirector": "", "verbose": 1,
    }
    (folder / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    (folder / "preproc.json").write_text(json.dumps(FIGURE4_PREPROC, indent=2) + "\n")
    (folder / "model.py").write_text(DEMO_MODEL)
    return {name: folder / name for name in
            ("signal.root", "background.root", "files.txt", "labels.txt", "params.json", "preproc.json", "model.py")}
