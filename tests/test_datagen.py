"""The demo data look like what a detector records: jets and leptons inside the acceptance and
above their pT thresholds, jets with a mass; partons (generator level) keep their own η."""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot

from mlaas4hep.datagen import JET_ETA_MAX, JET_PT_MIN, LEPTON_ETA_MAX, LEPTON_PT_MIN, write_tth


def test_objects_are_inside_the_detector(tmp_path):
    for signal in (True, False):
        path = write_tth(tmp_path / f"{signal}.root", 20_000, signal=signal, seed=5)
        a = uproot.open(path)["Events"].arrays(["jetPt", "jetEta", "jetM", "lep1Pt", "lep1Eta", "lep1Phi", "nLeptons"])
        eta = ak.to_numpy(ak.flatten(a.jetEta))
        assert np.abs(eta).max() < JET_ETA_MAX and np.abs(eta).max() > 0.9 * JET_ETA_MAX
        assert ak.min(a.jetPt) >= JET_PT_MIN
        mass = ak.to_numpy(ak.flatten(a.jetM))
        assert (mass > 0).all() and (mass < ak.to_numpy(ak.flatten(a.jetPt))).all()
        has = a.nLeptons > 0
        lep_eta = ak.to_numpy(a.lep1Eta[has])
        assert np.abs(lep_eta).max() < LEPTON_ETA_MAX and ak.min(a.lep1Pt[has]) >= LEPTON_PT_MIN
        assert np.isnan(ak.to_numpy(a.lep1Phi[~has])).all() and np.isfinite(ak.to_numpy(a.lep1Phi[has])).all()
