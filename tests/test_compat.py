"""The original MLaaS4HEP's inputs work as they are: its params keys (`nan`, `chunk_size: -1`),
its identifier defaults, its tolerance of branch names the files lack, and its specs files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import uproot

import mlaas4hep


def test_chunk_size_minus_one_is_every_event_in_one_chunk(tth):
    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params={"chunk_size": -1})
    chunks = list(ds.chunks())
    assert len(chunks) == 1 and ds.plan().n_chunks == 1
    X, y = chunks[0]
    assert X.shape[0] == 21_000 and np.bincount(y).tolist() == [9_000, 12_000]


def test_nan_is_the_value_that_nan_and_inf_become(kitchen_sink):
    raw = uproot.open(kitchen_sink)["Events"]["x"].array(library="np")
    bad = ~np.isfinite(raw)
    assert bad.sum() > 50  # the file has NaN and inf in x
    rows = {}
    for nan in (0.0, -1.0):
        ds = mlaas4hep.Dataset([str(kitchen_sink)], params={"identifier": ["id"], "nan": nan, "chunk_size": -1})
        chunk = next(ds.iter_chunks(shuffle=False))
        x = chunk.X[:, ds.feature_names.index("x")]
        assert np.all(x[bad[chunk.entry]] == nan)
        good = x[~bad[chunk.entry]]
        assert good.min() == 0.0 and good.max() == 1.0  # finite values are normalised as before
        rows[nan] = x[~bad[chunk.entry]]
    np.testing.assert_array_equal(rows[0.0], rows[-1.0])


def test_empty_identifier_excludes_run_event_luminosity_block_and_says_so(tth, caplog):
    with caplog.at_level(logging.INFO, logger="mlaas4hep"):
        ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params={"identifier": ""})
        names = ds.feature_names
    for branch in ("run", "event", "luminosityBlock"):
        assert branch in ds.files[0].branches and branch not in names
    assert ds.specs()["identifier"] == ["run", "event", "luminosityBlock"]
    assert [r.getMessage() for r in caplog.records] == [
        "params: identifier is empty, so run, event, luminosityBlock are event identifiers, not features "
        "(as in the original MLaaS4HEP)"]
    # and they travel with the rows as identifiers
    events = {i: uproot.open(p)["Events"]["event"].array(library="np") for i, p in enumerate(ds.paths)}
    chunk = next(ds.iter_chunks(identifiers=True))
    for i in (0, 1):
        rows = chunk.file_index == i
        np.testing.assert_array_equal(chunk.identifiers["event"][rows], events[i][chunk.entry[rows]])


def test_explicit_identifier_leaves_the_other_default_names_as_features(tth):
    ds = mlaas4hep.Dataset(tth["files"], params={"identifier": ["event"]})
    assert "event" not in ds.feature_names and "run" in ds.feature_names and "luminosityBlock" in ds.feature_names


def test_files_without_run_or_event_need_no_identifier(kitchen_sink, caplog):
    with caplog.at_level(logging.INFO, logger="mlaas4hep"):
        ds = mlaas4hep.Dataset([str(kitchen_sink)])
        assert "id" in ds.feature_names and ds.selection.identifiers == []
    assert caplog.records == []


def test_selected_default_identifier_is_not_a_feature_and_warned(tth, caplog):
    with caplog.at_level(logging.WARNING, logger="mlaas4hep"):
        ds = mlaas4hep.Dataset(tth["files"], params={"selected_branches": ["HT", "event"]})
        assert ds.feature_names == ["HT"]
    assert "selected_branches: event not used as feature" in caplog.text


def test_missing_exclude_or_identifier_branch_is_a_warning(tth, caplog):
    with caplog.at_level(logging.WARNING, logger="mlaas4hep"):
        ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"],
                               params={"exclude_branches": ["weigth", "MET"], "identifier": ["run", "evnt"]})
        names = ds.feature_names
    assert "MET" not in names and "run" not in names and "event" in names
    assert [r.getMessage() for r in caplog.records] == [
        "params: identifier: branch 'evnt' is not in the files; ignored (did you mean 'event'?)",
        "params: exclude_branches: branch 'weigth' is not in the files; ignored (did you mean 'weight'?)",
    ]
    assert ds.selection.identifiers == ["run"]
    X, y = next(ds.chunks())
    assert X.shape[1] == len(names)


def test_identifier_in_one_file_only_names_the_file(tth, tmp_path):
    """An identifier that one file lacks is ignored, naming that file."""
    src = uproot.open(tth["background"])["Events"].arrays(["HT", "MET", "run"], library="np")
    with uproot.recreate(tmp_path / "b.root") as out:
        out.mktree("Events", {k: v.dtype for k, v in src.items()}).extend(src)
    ds = mlaas4hep.Dataset([str(tth["signal"]), str(tmp_path / "b.root")], params={"identifier": ["run", "event"]})
    lacking = ds.files[1].where
    assert ds.selection.notes == [("warning", f"params: identifier: branch 'event' is not in {lacking}; ignored")]
    assert ds.selection.identifiers == ["run"] and ds.feature_names == ["HT", "MET"]


# ---------------------------------------------------------------------------------------------
# specs files written by the original


def original_specs(ds: mlaas4hep.Dataset, path) -> dict:
    """A global-specs.json as the original's RootDataGenerator writes it for these files: fkeys in
    the order of the tree and with the identifiers, min/max for them too, nans as the normalised
    value of 0, events as {"total": n, file: n}."""
    import json

    specs = ds.specs()
    tree = uproot.open(ds.paths[0])["Events"]
    flat = [k for k in tree.keys() if k in specs["fkeys"] or k in ("run", "event", "luminosityBlock")]
    arrays = {k: tree[k].array(library="np") for k in ("run", "event", "luminosityBlock")}
    minv = {**specs["minv"], **{k: float(v.min()) for k, v in arrays.items()}}
    maxv = {**specs["maxv"], **{k: float(v.max()) for k, v in arrays.items()}}
    nans = {k: (maxv[k] if maxv[k] == minv[k] else (0 - minv[k]) / (maxv[k] - minv[k])) for k in minv}
    data = {"jdim": specs["jdim"], "minv": minv, "maxv": maxv, "fkeys": flat, "jkeys": list(specs["jkeys"]),
            "nans": nans, "events": {"total": specs["events"]["total"], **specs["events"]["per_file"]}}
    assert flat != specs["fkeys"] and "event" in flat  # file order, identifiers included
    path.write_text(json.dumps(data))
    return data


def test_a_specs_file_written_by_the_original_is_accepted(tth, tmp_path):
    params = {"chunk_size": -1}
    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params=params)
    data = original_specs(ds, tmp_path / "global-specs.json")
    X, _ = next(ds.chunks(shuffle=False))
    again = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params=params, specs=tmp_path / "global-specs.json")
    assert again.feature_names == ds.feature_names
    Y, _ = next(again.chunks(shuffle=False))
    np.testing.assert_array_equal(X, Y)
    # its min/max are what is used: widen one range and that column changes accordingly
    data["maxv"]["HT"] *= 2
    wider = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params=params, specs=data)
    Z, _ = next(wider.chunks(shuffle=False))
    col = ds.feature_names.index("HT")
    lo, hi = data["minv"]["HT"], data["maxv"]["HT"]
    np.testing.assert_allclose(Z[:, col], X[:, col] * (hi / 2 - lo) / (hi - lo), rtol=1e-5, atol=1e-6)


def test_the_given_specs_are_the_artifacts_normalisation(tth, tmp_path):
    """A model trained with --specs must score new events with those min/max, not the computed ones."""
    from support import torch_model

    pytest.importorskip("torch")
    params = {"chunk_size": -1, "epochs": 1}
    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params=params)
    data = original_specs(ds, tmp_path / "global-specs.json")
    data["maxv"]["HT"] *= 3
    model = tmp_path / "model.py"
    model.write_text(torch_model())
    given = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params=params, specs=data)
    artifact = mlaas4hep.train(given, model, output=tmp_path / "out")
    loaded = mlaas4hep.Artifact.load(tmp_path / "out" / "artifact", model=model)
    assert loaded.layout.maxv["HT"] == data["maxv"]["HT"] != ds.specs()["maxv"]["HT"]
    assert artifact.layout.minv == loaded.layout.minv


@pytest.mark.parametrize("change, message", [
    (lambda d: d["fkeys"].remove("HT"), "it lacks 'HT'"),
    (lambda d: d["fkeys"].append("weigth"), "it has 'weigth', which the files and preproc do not give"),
    (lambda d: d["minv"].pop("MET"), "minv.MET: expected a finite number, got None"),
    (lambda d: d["maxv"].update(MET=float("nan")), "maxv.MET: expected a finite number, got nan"),
    (lambda d: d["jdim"].update(jetPt=-1), "jdim.jetPt: expected a length from 0 to 100,000, got -1"),
    (lambda d: d["jdim"].update(jetPt=10**9), "jdim.jetPt: expected a length from 0 to 100,000"),
    (lambda d: d.pop("jkeys"), "missing key 'jkeys'"),
    (lambda d: d.update(fkeys="HT,MET"), "fkeys must be a list of branch names"),
])
def test_a_specs_file_that_does_not_fit_is_one_clear_error(tth, tmp_path, change, message):
    import json

    from mlaas4hep import ConfigError

    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"])
    path = tmp_path / "specs.json"
    data = original_specs(ds, path)
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        mlaas4hep.Dataset(tth["files"], labels=tth["labels"], specs=path).feature_names
    assert str(info.value).startswith(str(path))
