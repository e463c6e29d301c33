"""mlaas4hep.explore.Sample: binning of previews, checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest
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


def _read(path, names, n):
    return uproot.open(path)["Events"].arrays(names, entry_stop=n, library="np")


def test_weighted_histogram_and_cutflow_match_numpy(tth):
    """Σw per bin and √Σw² errors, with a per-file scale, against numpy on the file's arrays."""
    files = [str(tth["signal"]), str(tth["background"])]
    params = {"weight": {"expr": "weight * 2", "scale": [0.5, 3.0]}}
    sample = Sample(files, labels=["signal", "background"], params=params, n_events=3000)
    preproc = {"flat_cut": {"HT": {"cut": "HT > 300"}}}
    h = sample.histogram("HT", preproc, bins=20)
    assert h.weighted
    for path, group, scale in ((files[0], "signal", 0.5), (files[1], "background", 3.0)):
        a = _read(path, ["HT", "weight"], 3000)
        w = a["weight"].astype(float) * 2 * scale
        keep = a["HT"] > 300
        counts, _ = np.histogram(a["HT"][keep], bins=h.edges, weights=w[keep])
        w2, _ = np.histogram(a["HT"][keep], bins=h.edges, weights=w[keep] ** 2)
        np.testing.assert_allclose(h.after[group], counts, rtol=1e-6)
        np.testing.assert_allclose(h.errors()[group], np.sqrt(w2), rtol=1e-6)
    rows = sample.cutflow(preproc)
    a = _read(files[0], ["HT", "weight"], 3000)
    w = a["weight"].astype(float) * 2 * 0.5
    keep = a["HT"] > 300
    assert rows[1]["per_group_weighted"]["signal"] == pytest.approx(w[keep].sum())
    assert rows[1]["per_group_error"]["signal"] == pytest.approx(np.sqrt((w[keep] ** 2).sum()))
    s, b = rows[1]["per_group_weighted"]["signal"], rows[1]["per_group_weighted"]["background"]
    assert rows[1]["s_over_sqrt_b"] == pytest.approx(s / np.sqrt(b))
    assert rows[1]["s_over_sqrt_s_b"] == pytest.approx(s / np.sqrt(s + b))


def test_jagged_elements_carry_their_event_weight(tth):
    sample = Sample([str(tth["signal"])], params={"weight": "weight"}, n_events=2000)
    h = sample.histogram("jetPt", bins=10)
    a = uproot.open(tth["signal"])["Events"].arrays(["jetPt", "weight"], entry_stop=2000)
    import awkward as ak
    w = ak.flatten(ak.broadcast_arrays(a["weight"], a["jetPt"])[0])
    expected, _ = np.histogram(ak.to_numpy(ak.flatten(a["jetPt"])), bins=h.edges, weights=ak.to_numpy(w).astype(np.float64))
    total = h.before[next(iter(h.before))]
    assert total.sum() == pytest.approx(expected.sum(), rel=1e-6)  # the maximum sits in the last bin
    np.testing.assert_allclose(total[:-1], expected[:-1], rtol=1e-5)


def test_a_weight_that_is_not_per_event_is_refused(tth):
    from mlaas4hep import ConfigError
    from mlaas4hep.errors import MLaaS4HEPError

    sample = Sample([str(tth["signal"])], params={"weight": "jetPt"}, n_events=100)
    with pytest.raises(MLaaS4HEPError, match="per element; it needs one per event"):
        sample.histogram("HT")
    with pytest.raises(ConfigError, match="2 scale"):
        Sample([str(tth["signal"])], params={"weight": {"expr": "weight", "scale": [1, 2]}}, n_events=100)


def test_cutflow_is_in_the_order_written(tth):
    """Flat cuts written before the new branch come first in the table; the selection is the same."""
    written = {"flat_cut": {"HT": {"cut": "HT > 250"}},
               "new_branch": {"lead": {"def": "max(jetPt)", "cut_2": "lead < 400", "cut_1": "lead > 40"}},
               "jagged_cut": {"jetEta": {"cut": ["abs(jetEta) < 2.4", "all"]}}}
    sample = Sample([str(tth["signal"])], n_events=3000)
    rows = sample.cutflow(written)
    assert [r["cut"] for r in rows] == ["all events", "HT > 250", "lead < 400", "lead > 40",
                                        "all(abs(jetEta) < 2.4)"]
    reordered = {k: written[k] for k in ("new_branch", "jagged_cut", "flat_cut")}
    assert [r["cut"] for r in sample.cutflow(reordered)][1:] == ["lead < 400", "lead > 40",
                                                                 "all(abs(jetEta) < 2.4)", "HT > 250"]
    assert rows[-1]["total"] == sample.cutflow(reordered)[-1]["total"]


def test_n_minus_1_keeps_every_other_cut_and_gives_the_thresholds(tth):
    sample = Sample([str(tth["signal"])], n_events=3000)
    preproc = {"flat_cut": {"HT": {"cut": "200 < HT < 900"}, "MET": {"cut": "MET > 20"}}}
    h = sample.histogram("HT", preproc, bins=30, n_minus_1=True)
    a = _read(tth["signal"], ["HT", "MET"], 3000)
    assert h.cut_values == [200.0, 900.0] and h.excluded_cuts == ["200 < HT < 900"]
    assert h.after[next(iter(h.after))].sum() == int((a["MET"] > 20).sum())
    full = sample.histogram("HT", preproc, bins=30)
    assert full.after[next(iter(full.after))].sum() == int(((a["HT"] > 200) & (a["HT"] < 900) & (a["MET"] > 20)).sum())


def test_which_label_is_the_signal(tth):
    files = [str(tth["signal"]), str(tth["background"])]
    assert Sample(files, labels=["1", "0"], n_events=10).signal == "label 1"
    assert Sample(files, labels=["signal", "background"], n_events=10).signal == "signal"
    assert Sample(files, labels=["ttH", "ttbar"], n_events=10).signal is None
    mapping = dict(Sample(files, labels=["1", "0"], n_events=10).class_mapping())
    assert mapping["label 1"].startswith("signal") and mapping["label 0"].startswith("background")


def test_cut_edits_on_one_sample_count_as_a_fresh_sample_does(tth):
    """The binned elements are kept between cut edits: a jagged branch's weighted histogram after
    each of several cut edits equals numpy's on the file's arrays (and an N−1 view in between)."""
    import awkward as ak

    params = {"weight": {"expr": "weight", "scale": [2.0]}}
    sample = Sample([str(tth["signal"])], labels=["signal"], params=params, n_events=3000)
    a = uproot.open(tth["signal"])["Events"].arrays(["jetPt", "HT", "weight"], entry_stop=3000)
    first = None
    for threshold in (150, 300, 450, 200):
        preproc = {"flat_cut": {"HT": {"cut": f"HT > {threshold}"}}, "jagged_cut": {"jetPt": {"cut": ["jetPt > 30", "any"]}}}
        h = sample.histogram("jetPt", preproc, bins=25)
        sample.histogram("jetPt", preproc, bins=25, n_minus_1=True)
        first = h.edges if first is None else first
        np.testing.assert_array_equal(h.edges, first)  # the bins span the values before the cuts
        keep = ak.to_numpy((a["HT"] > threshold) & ak.any(a["jetPt"] > 30, axis=1))
        pt = a["jetPt"][keep]
        w = ak.flatten(ak.broadcast_arrays(a["weight"][keep], pt)[0])
        values = ak.to_numpy(ak.flatten(pt)).astype(np.float64)
        values = np.where(values == h.edges[-1], np.nextafter(h.edges[-1], 0), values)
        w = ak.to_numpy(w).astype(np.float64) * 2.0
        counts, _ = np.histogram(values, bins=h.edges, weights=w)
        w2, _ = np.histogram(values, bins=h.edges, weights=w * w)
        np.testing.assert_allclose(h.after["signal"], counts, rtol=1e-9)
        np.testing.assert_allclose(h.after_w2["signal"], w2, rtol=1e-9)
        assert h.after["signal"].sum() < h.before["signal"].sum()


def test_kept_values_and_masks_follow_a_changed_definition(tth):
    """New-branch values and cut masks are kept between edits by the definitions they depend
    on: the same cut text on a redefined new branch selects anew."""
    sample = Sample([str(tth["signal"])], n_events=2000)
    ht = _read(tth["signal"], ["HT"], 2000)["HT"].astype(np.float64)
    for factor in (1, 3, 1):
        preproc = {"new_branch": {"big": {"def": f"HT * {factor}", "type": "flat", "cut": "big > 600"}}}
        rows = sample.cutflow(preproc)
        assert rows[-1]["total"] == int((ht * factor > 600).sum())
        h = sample.histogram("big", preproc, bins=10)
        assert h.edges[-1] == pytest.approx(ht.max() * factor, rel=1e-6)
