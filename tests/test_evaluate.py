"""Evaluation (evaluation.json, ``mlaas4hep evaluate``): ROC, AUC, KS and confusion checked
against scikit-learn and scipy (test-only dependencies), the overtraining flag on a model that
is overtrained on purpose, and what the training job writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mlaas4hep
from mlaas4hep import evaluate as E
from mlaas4hep.cli import main as cli_main
from mlaas4hep.datagen import write_tth
from mlaas4hep.events import read_events

from support import OVERTRAINED_MODEL, OVERTRAINED_PARAMS, need, write_labelled_pair

try:
    from scipy import special, stats
    from sklearn import metrics
except ImportError:  # the references are test dependencies (the test extra)
    metrics = stats = special = None


@pytest.fixture(autouse=True)
def _references():
    need(metrics is not None, "scikit-learn and scipy (the test extra) are not installed")


@pytest.fixture(scope="module")
def scored():
    """Labels and scores with many ties (rounded), and positive weights."""
    rng = np.random.default_rng(11)
    y = rng.random(6000) < 0.35
    score = np.clip(np.round(rng.normal(0.35 + 0.3 * y, 0.2), 2), 0, 1)
    return y, score, rng.uniform(0.1, 3.0, y.size)


@pytest.mark.parametrize("weighted", [False, True])
def test_roc_curve_and_auc_equal_sklearn(scored, weighted):
    y, score, w = scored
    w = w if weighted else None
    fpr, tpr, thresholds = E.roc_curve(y, score, w)
    ref_fpr, ref_tpr, ref_thr = metrics.roc_curve(y, score, sample_weight=w, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tpr, ref_tpr, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(thresholds, ref_thr)
    assert E.roc_auc(y, score, w) == pytest.approx(metrics.roc_auc_score(y, score, sample_weight=w), abs=1e-12)


def test_one_class_only_gives_nan_auc():
    assert np.isnan(E.roc_auc(np.ones(5, bool), np.linspace(0, 1, 5)))


def test_bootstrap_spread_is_that_of_resampled_sklearn_aucs(scored):
    y, score, _ = scored
    out = E.bootstrap_auc(y, score, n_bootstrap=50, seed=4)
    rng = np.random.default_rng(4)  # the same resamples, drawn as indices
    ref = []
    for _ in range(50):
        idx = rng.integers(0, y.size, y.size)
        ref.append(metrics.roc_auc_score(y[idx], score[idx]))
    assert out["value"] == pytest.approx(metrics.roc_auc_score(y, score), abs=1e-12)
    assert out["std"] == pytest.approx(np.std(ref, ddof=1), rel=1e-9)
    assert out["interval68"] == pytest.approx(list(np.quantile(ref, [0.16, 0.84])), rel=1e-9)
    assert 0.003 < out["std"] < 0.03


@pytest.mark.parametrize("x", [0.05, 0.3, 0.6, 0.9, 0.99, 1.0, 1.3, 2.0, 3.5])
def test_kolmogorov_series_equals_scipy(x):
    assert E.kolmogorov_sf(x) == pytest.approx(special.kolmogorov(x), abs=1e-12)


@pytest.mark.parametrize("na,nb,shift", [(300, 200, 0.0), (3000, 2500, 0.1), (20000, 15000, 0.03), (80, 60, 0.4)])
def test_ks_equals_scipy(na, nb, shift):
    rng = np.random.default_rng(na)
    a, b = rng.normal(0, 1, na), rng.normal(shift, 1, nb)
    d, p = E.ks_2samp(a, b)
    ref = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    # scipy's asymptotic p uses the exact one-sample distribution at n = na nb / (na + nb); the
    # Kolmogorov series with Stephens' correction is within a few percent of it
    assert p == pytest.approx(ref.pvalue, rel=0.1, abs=2e-3)
    en = np.sqrt(na * nb / (na + nb))
    assert p == pytest.approx(special.kolmogorov((en + 0.12 + 0.11 / en) * d), abs=1e-12)


def test_ks_with_ties_and_unit_weights(scored):
    y, score, _ = scored
    a, b = score[y], score[~y]
    d, _ = E.ks_2samp(a, b, np.ones(a.size), np.ones(b.size))
    assert d == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_weighted_ks_equals_repeated_events():
    """Integer weights are the same as repeating events: D and the ECDFs agree with scipy on the
    repeated samples."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 400), rng.normal(0.2, 1, 300)
    wa, wb = rng.integers(1, 4, a.size), rng.integers(1, 4, b.size)
    d, p = E.ks_2samp(a, b, wa.astype(float), wb.astype(float))
    assert d == pytest.approx(stats.ks_2samp(np.repeat(a, wa), np.repeat(b, wb)).statistic, abs=1e-12)
    assert 0.0 <= p <= 1.0


def test_multiclass_one_vs_rest_and_confusion_equal_sklearn():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 3000)
    logits = rng.normal(0, 1, (3000, 3)) + 1.2 * np.eye(3)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    out = E.evaluate(y, p, class_names=["a", "b", "c"], n_bootstrap=10)
    for c, curve in enumerate(out["roc"]):
        assert curve["name"] == "abc"[c]
        assert curve["auc"] == pytest.approx(metrics.roc_auc_score(y == c, p[:, c]), abs=1e-12)
    assert out["auc"]["value"] == pytest.approx(metrics.roc_auc_score(y, p, multi_class="ovr", average="macro"),
                                                abs=1e-12)
    assert out["confusion"]["matrix"] == metrics.confusion_matrix(y, p.argmax(1)).tolist()
    assert out["ks"] == [] and out["score_histograms"]["classes"][0]["train"] is None


def test_binary_evaluation_keys_values_and_histograms(scored):
    y, score, w = scored
    rng = np.random.default_rng(9)
    y_train = rng.random(4000) < 0.35
    s_train = np.clip(rng.normal(0.35 + 0.3 * y_train, 0.2), 0, 1)
    out = E.evaluate(y, score, y_train, s_train, weight_test=w, threshold=0.45, class_names=["bkg", "sig"],
                     n_bootstrap=20)
    assert {"roc", "auc", "score_histograms", "ks", "confusion", "overtraining"} <= set(out)
    assert out["weighted"] is True
    assert out["auc"]["value"] == pytest.approx(metrics.roc_auc_score(y, score, sample_weight=w), abs=1e-12)
    curve = out["roc"][0]
    assert curve["name"] == "sig" and len(curve["signal_efficiency"]) <= 303
    assert curve["signal_efficiency"][0] == 0 and curve["signal_efficiency"][-1] == 1
    ref = metrics.confusion_matrix(y, score >= 0.45, sample_weight=w)
    np.testing.assert_allclose(out["confusion"]["matrix"], ref, rtol=1e-12)
    edges = np.array(out["score_histograms"]["edges"])
    for row in out["score_histograms"]["classes"]:
        c = row["class"]
        ref_test, _ = np.histogram(score[y == c], bins=edges, weights=w[y == c])
        np.testing.assert_allclose(row["test"], ref_test, rtol=1e-12)
        ref_train, _ = np.histogram(s_train[y_train == c], bins=edges)
        np.testing.assert_allclose(row["train"], ref_train)
        ks = out["ks"][c]
        assert ks["statistic"] == pytest.approx(stats.ks_2samp(s_train[y_train == c], score[y == c]).statistic,
                                                abs=0.06)  # the test side is weighted here


def test_overtraining_flag_rules():
    ks_ok = [{"name": "0", "p_value": 0.4}, {"name": "1", "p_value": 0.2}]
    falling = [{"loss": 1.0 - 0.1 * i, "val_loss": 1.0 - 0.1 * i} for i in range(6)]
    assert E.overtraining(ks_ok, falling)["flag"] is False
    flagged = E.overtraining([{"name": "1", "p_value": 0.01}], falling)
    assert flagged["flag"] and "class 1" in flagged["reasons"][0]
    diverging = [{"loss": 1.0 - 0.1 * i, "val_loss": 0.6 + 0.05 * i} for i in range(6)]
    out = E.overtraining(ks_ok, diverging)
    assert out["flag"] and "val_loss rising" in out["reasons"][0]
    assert E.overtraining(ks_ok, diverging[:2])["loss_trend"] is None  # too few epochs to say
    # a noisy validation loss that drifts up a little is not a trend
    noisy = [{"loss": 1.0 - 0.1 * i, "val_loss": 0.6 + 0.01 * i + (0.1 if i % 2 else -0.1)} for i in range(6)]
    trend = E.overtraining(ks_ok, noisy)["loss_trend"]
    assert trend["val_loss_slope"] > 0 and trend["diverging"] is False
    slope = np.polyfit(np.arange(5), [h["val_loss"] for h in noisy[-5:]], 1)[0]
    assert trend["val_loss_slope"] == pytest.approx(slope)
    # chunk mode: each chunk counts once, with its last epoch
    chunks = [{"chunk": c, "epoch": e, "loss": 1.0 - 0.1 * c - 0.01 * e, "val_loss": 0.5 + 0.1 * c - 0.05 * e}
              for c in range(4) for e in (1, 2, 3)]
    trend = E.loss_trend(chunks)
    assert trend["per"] == "chunk" and trend["epochs"] == 4 and trend["val_loss_slope"] == pytest.approx(0.1)
    assert "/chunk" in E.overtraining(ks_ok, chunks)["reasons"][0]


# ---------------------------------------------------------------------------------------------
# a training job writes it; the command line recomputes it


@pytest.fixture(scope="module")
def overtrained(tmp_path_factory):
    """A big network trained many epochs on 1200 events: overtrained on purpose (shared)."""
    folder = tmp_path_factory.mktemp("overtrained")
    sig, bkg = write_labelled_pair(folder, 3000, seed=5)
    (folder / "model.py").write_text(OVERTRAINED_MODEL)
    ds = mlaas4hep.Dataset([str(sig), str(bkg)], labels=["signal", "background"],
                           params=OVERTRAINED_PARAMS)
    artifact = mlaas4hep.train(ds, folder / "model.py", output=folder / "run")
    return {"folder": folder, "artifact": artifact, "output": folder / "run"}


def _rows(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate([np.load(p) for p in sorted(folder.glob("X-*.npy"))])
    y = np.concatenate([np.load(p) for p in sorted(folder.glob("y-*.npy"))])
    return X, y


@pytest.mark.slow
def test_job_writes_evaluation_json_and_event(overtrained):
    artifact, output = overtrained["artifact"], overtrained["output"]
    ev = json.loads((artifact.path / "evaluation.json").read_text())
    X_test, y_test = _rows(output / "test")
    X_train, y_train = _rows(output / "train_sample")
    s_test, s_train = artifact.adapter.predict(X_test), artifact.adapter.predict(X_train)
    assert ev["classes"] == ["signal", "background"]
    assert ev["events"] == {"test": y_test.size, "train_sample": y_train.size}
    assert 0.6 * y_test.size < y_train.size < 1.4 * y_test.size  # a train sample about as big as the test set
    assert ev["auc"]["value"] == pytest.approx(metrics.roc_auc_score(y_test, s_test), abs=1e-9)
    assert ev["auc"]["value"] == pytest.approx(artifact.metrics["auc"], abs=1e-9)
    for row in ev["ks"]:
        c = row["class"]
        ref = stats.ks_2samp(s_train[y_train == c], s_test[y_test == c])
        assert row["statistic"] == pytest.approx(ref.statistic, abs=1e-6)
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=0.25, abs=1e-3)
    events = [e for e in read_events(output / "events.jsonl") if e["event"] == "evaluation"]
    assert len(events) == 1 and events[0]["auc"]["value"] == pytest.approx(ev["auc"]["value"])
    kinds = [e["event"] for e in read_events(output / "events.jsonl")]
    assert kinds.index("evaluation") < kinds.index("finished")


@pytest.mark.slow
def test_overtrained_model_is_flagged(overtrained):
    ev = json.loads((overtrained["artifact"].path / "evaluation.json").read_text())
    assert ev["overtraining"]["flag"] is True
    assert min(row["p_value"] for row in ev["ks"]) < 1e-4
    assert any("KS test" in r for r in ev["overtraining"]["reasons"])


@pytest.mark.slow
def test_cli_evaluate_splits_training_files_as_training_did(overtrained, tmp_path, capsys):
    folder, artifact = overtrained["folder"], overtrained["artifact"]
    job = json.loads((artifact.path / "evaluation.json").read_text())
    out = tmp_path / "ev.json"
    code = cli_main(["evaluate", "--artifact", str(artifact.path), "--files", str(folder / "sig.root"),
                     str(folder / "bkg.root"), "--out", str(out), "--bootstrap", "20"])
    printed = capsys.readouterr().out
    assert code == 0 and "AUC" in printed and "overtraining" in printed and f"wrote {out}" in printed
    ev = json.loads(out.read_text())
    # the job's test rows, plus every selected event beyond the 600-per-file training quota
    X_test, _ = _rows(overtrained["output"] / "test")
    assert ev["events"]["test"] == X_test.shape[0] + 2 * (3000 - 600)
    n_train = ev["events"]["train_sample"]
    assert 0.7 * 1200 * 0.6 * 0.8 < n_train < 1.3 * 1200 * 0.6 * 0.8
    assert ev["overtraining"]["flag"] is True
    assert ev["auc"]["value"] < job["auc"]["value"] + 0.05


@pytest.mark.slow
def test_cli_evaluate_on_new_files_and_its_errors(overtrained, tmp_path, capsys):
    folder, artifact = overtrained["folder"], overtrained["artifact"]
    new = write_tth(tmp_path / "new.root", 1500, signal=True, seed=99, separation=1.0)
    code = cli_main(["evaluate", "--artifact", str(artifact.path), "--files", str(new)])
    err = capsys.readouterr().err
    assert code == 2 and "new.root" in err and "not used in training" in err and "--labels" in err
    code = cli_main(["evaluate", "--artifact", str(artifact.path), "--files", str(new), str(folder / "bkg.root"),
                     "--labels", "signal,higgs", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert code == 2 and "'higgs' is not a class" in err and "signal, background" in err
    code = cli_main(["evaluate", "--artifact", str(artifact.path), "--files", str(new), "--threshold", "2"])
    assert code == 2 and "--threshold" in capsys.readouterr().err
    out = tmp_path / "new.json"
    code = cli_main(["evaluate", "--artifact", str(artifact.path), "--files", str(new), str(folder / "bkg.root"),
                     "--labels", "signal,background", "--out", str(out), "--bootstrap", "10"])
    capsys.readouterr()
    ev = json.loads(out.read_text())
    assert code == 0 and ev["events"]["test"] > 1500 and ev["ks"][1]["n_train"] > 0
    assert ev["ks"][0]["name"] == "signal" and ev["ks"][0]["n_train"] == 0 and ev["ks"][0]["p_value"] is None


def test_t_quantiles_of_the_loss_trend_equal_scipy():
    for dof, value in E._T95.items():  # noqa: SLF001 - the table the trend test uses
        assert value == pytest.approx(stats.t.ppf(0.95, dof), abs=1e-3)
