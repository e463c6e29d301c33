"""mlaas4hep.explore.Sample: binning of previews, checked against numpy."""

from __future__ import annotations

import numpy as np
import uproot

from mlaas4hep.explore import Sample


def test_integer_branches_get_one_centred_bin_per_value(tth):
    sample = Sample([str(tth["signal"])], n_events=4000)
    h = sample.histogram("nJets")
    n = uproot.open(tth["signal"])["Events"]["nJets"].array(library="np", entry_stop=4000)
    assert np.allclose(np.diff(h.edges), 1.0) and h.edges[0] == n.min() - 0.5
    counts = h.before[next(iter(h.before))]
    np.testing.assert_array_equal(counts, np.bincount(n - n.min(), minlength=len(counts)))
    # and after a cut, the events of nJets >= 4 are in the bins of 4, 5, ...
    cut = sample.histogram("nJets", {"flat_cut": {"nJets": {"cut": "nJets >= 4"}}})
    after = cut.after[next(iter(cut.after))]
    centres = (cut.edges[:-1] + cut.edges[1:]) / 2
    assert after[centres < 4].sum() == 0 and after.sum() == int((n >= 4).sum())


def test_float_branches_keep_their_maximum(tth):
    sample = Sample([str(tth["signal"])], n_events=4000)
    h = sample.histogram("HT", bins=37)
    ht = uproot.open(tth["signal"])["Events"]["HT"].array(library="np", entry_stop=4000).astype(float)
    assert h.edges[0] == ht.min() and h.edges[-1] == ht.max()
    counts = h.before[next(iter(h.before))]
    assert counts.sum() == len(ht)  # nothing lost in the overflow
    np.testing.assert_array_equal(counts, np.histogram(ht, bins=h.edges)[0])
