"""PreprocBuilder and BranchExplorer without a browser: set values, click buttons, and check the
preproc.json they produce and the numbers they show against an independent computation."""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import uproot

from mlaas4hep.datagen import FIGURE4_PREPROC
from mlaas4hep_lab.widgets.builder import PreprocBuilder
from mlaas4hep_lab.widgets.explorer import BranchExplorer
from mlaas4hep_lab.widgets.state import WorkbenchState

FIGURE4_TEXT = json.dumps(FIGURE4_PREPROC, indent=2) + "\n"


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def state(tth):
    return WorkbenchState(files=[str(tth["signal"]), str(tth["background"])], labels=["signal", "background"],
                          sample_size=5000)


@pytest.fixture
def builder(state):
    b = PreprocBuilder(state)
    wait_until(lambda: "partonPt" in b.branch_table.value)
    return b


def test_figure4_round_trips_exactly(builder, tmp_path):
    original = tmp_path / "figure4.json"
    original.write_text(FIGURE4_TEXT)
    builder.load(original)
    assert builder.to_dict() == FIGURE4_PREPROC
    assert builder.state.preproc == FIGURE4_PREPROC  # valid for these files: published
    out = tmp_path / "saved.json"
    builder.save(out)
    assert out.read_text() == FIGURE4_TEXT  # same keys, same order, "False" strings kept
    # the rows show what the file says
    rows = {r.name: r for r in builder.new_box.children}
    assert rows["log_partonE"].definition.value == "log(partonE)" and rows["log_partonE"].kind.value == "jagged"
    assert rows["nJets_square"].keys_to_remove.value == "nJets" and rows["nJets_square"].remove.value is False
    # toggling a flag and back leaves the file as it was
    rows["nJets_square"].remove.value = True
    assert builder.to_dict()["new_branch"]["nJets_square"]["remove"] == "True"
    rows["nJets_square"].remove.value = False
    builder.save(out)
    assert out.read_text() == FIGURE4_TEXT


def test_building_a_preproc_by_clicking(builder, state):
    builder.add_new.click()
    row = builder.new_box.children[-1]
    row.name_box.value = "leadPt"
    row.definition.value = "max(jetPt)"
    row.kind.value = "flat"
    row.cuts.add.click()
    cut = row.cuts.children[0]
    cut.children[1].value = "leadPt > 50"
    builder.add_jagged.click()
    jagged = builder.jagged_box.children[-1]
    jagged.branch.value = "partonPt"
    jagged.cuts.children[0].children[1].value = "partonPt > 150"
    jagged.cuts.children[0].children[2].value = "any"
    jagged.cuts.add.click()  # a second cut: keys become cut_1, cut_2
    jagged.cuts.children[1].children[1].value = "partonEta < 2"
    jagged.remove.value = True
    builder.add_flat.click()
    flat = builder.flat_box.children[-1]
    flat.branch.value = "nLeptons"
    flat.cuts.children[0].children[1].value = "nLeptons <= 2"
    expected = {
        "new_branch": {"leadPt": {"def": "max(jetPt)", "type": "flat", "cut": "leadPt > 50"}},
        "jagged_cut": {"partonPt": {"remove": True, "cut_1": ["partonPt > 150", "any"],
                                    "cut_2": ["partonEta < 2", "all"]}},
        "flat_cut": {"nLeptons": {"cut": "nLeptons <= 2"}},
    }
    assert builder.to_dict() == expected
    assert json.loads(builder.json_view.value) == expected
    assert state.preproc == expected and builder.error.value == ""
    builder.delete_entry("flat_cut", "nLeptons")
    assert "flat_cut" not in state.preproc


def test_expressions_are_checked_as_they_are_typed(builder, state):
    builder.add_new.click()
    row = builder.new_box.children[-1]
    row.definition.value = "log(partonE"
    assert "syntax error" in row.note.value
    row.definition.value = "log(partonEE)"
    assert "unknown branch 'partonEE' (did you mean 'partonE'" in html.unescape(row.note.value)
    row.definition.value = "__import__('os')"
    assert "unknown function" in row.note.value
    assert state.preproc == {}  # never published while invalid
    row.definition.value = "log(partonE)"
    assert row.note.value == ""
    row.kind.value = "flat"  # a jagged value declared flat
    assert "declared type 'flat'" in html.unescape(builder.error.value)
    row.kind.value = "jagged"
    assert builder.error.value == "" and state.preproc["new_branch"]["new_branch_1"]["def"] == "log(partonE)"


def independent_counts(tth, branch, edges, preproc_mask=None):
    """numpy only: histogram of the first 5000 events of each file, with an optional mask."""
    out = {}
    for group, path in (("signal", tth["signal"]), ("background", tth["background"])):
        values = uproot.open(path)["Events"][branch].array(library="np", entry_stop=5000)
        mask = preproc_mask(path) if preproc_mask else np.ones(len(values), bool)
        chosen = values[mask]
        flat = np.concatenate(list(chosen)) if chosen.dtype == object else chosen
        out[group] = np.histogram(flat.astype(float), bins=edges)[0]
    return out


def figure4_mask(path):
    t = uproot.open(path)["Events"]
    data = t.arrays(["partonE", "partonPt", "nJets", "nLeptons"], library="np", entry_stop=5000)
    mask = []
    for i in range(len(data["nJets"])):
        log_e = [math.log(float(v)) for v in data["partonE"][i]]
        mask.append(any(v < 6.31 for v in log_e) and all(v > 5.85 for v in log_e)
                    and 1 <= float(data["nJets"][i]) ** 2 <= 16 and 0 <= data["nLeptons"][i] <= 2
                    and all(v > 200 for v in data["partonPt"][i]))
    return np.array(mask)


def test_explorer_histogram_and_cutflow_match_an_independent_count(builder, state, tth, tmp_path):
    explorer = BranchExplorer(state, debounce=0.01)
    wait_until(lambda: explorer.updates >= 1)
    explorer.branch.value = "partonPt"
    wait_until(lambda: explorer.histogram is not None and explorer.histogram.branch == "partonPt")
    before = explorer.updates
    (tmp_path / "f4.json").write_text(FIGURE4_TEXT)
    builder.load(tmp_path / "f4.json")  # the builder publishes; the explorer follows
    wait_until(lambda: explorer.updates > before and state.preproc and explorer.cutflow_rows[-1]["cut"] ==
               "all(partonPt>200)")
    h = explorer.histogram
    expected_before = independent_counts(tth, "partonPt", h.edges)
    expected_after = independent_counts(tth, "partonPt", h.edges, figure4_mask)
    for group in ("signal", "background"):
        np.testing.assert_array_equal(h.before[group], expected_before[group])
        np.testing.assert_array_equal(h.after[group], expected_after[group])
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    # the cut flow: cumulative counts per label
    last = explorer.cutflow_rows[-1]
    assert last["per_group"] == {"signal": int(figure4_mask(tth["signal"]).sum()),
                                 "background": int(figure4_mask(tth["background"]).sum())}
    assert explorer.cutflow_rows[0]["per_group"] == {"signal": 5000, "background": 5000}
    assert "all(partonPt>200)" in html.unescape(explorer.cutflow.value)
    # multiplicity of a jagged branch, and a new branch
    explorer.show.value = "multiplicity"
    wait_until(lambda: explorer.histogram.what == "multiplicity")
    n = uproot.open(tth["signal"])["Events"]["nPartons"].array(library="np", entry_stop=5000)
    counts = explorer.histogram.before["signal"]
    assert int(counts.sum()) == 5000
    assert int(counts[np.searchsorted(explorer.histogram.edges, 6.0) - 1]) == int((n == 6).sum())
    explorer.show.value = "values"
    explorer.branch.value = "log_partonE"
    wait_until(lambda: explorer.histogram.branch == "log_partonE")
    assert explorer.histogram.after["signal"].sum() > 0
    explorer.normalise.value = True
    explorer.log_y.value = True
    explorer.update()
    assert explorer.status.value.startswith("<small>sample")


def test_explorer_shows_errors_instead_of_raising(state):
    state.files = ["/nonexistent/file.root"]
    explorer = BranchExplorer(state, debounce=0.01)
    explorer.update()
    assert "ROOT file not found" in explorer.status.value


def test_an_invalid_new_branch_is_never_shown_under_its_name(builder, state):
    """The issue's bug: a new branch whose definition became invalid was still listed, and
    picking it showed the previous data. Now it is not listed, and Explore says why."""
    explorer = BranchExplorer(state, debounce=0.01)
    builder.add_new.click()
    row = builder.new_box.children[-1]
    row.name_box.value = "leadPt"
    row.definition.value = "max(jetPt)"
    wait_until(lambda: "leadPt" in explorer.branch.options, timeout=90)
    explorer.branch.value = "leadPt"
    wait_until(lambda: explorer.histogram is not None and explorer.histogram.branch == "leadPt", timeout=90)
    lead = explorer.histogram.before["signal"].sum()
    row.definition.value = "max(jetPtt)"  # invalid now
    wait_until(lambda: "leadPt" not in explorer.branch.options, timeout=90)
    banner = html.unescape(explorer.banner.value)
    assert "The preproc in the builder is invalid" in banner and "jetPtt" in banner
    assert "leadPt: not shown, its definition is now 'max(jetPtt)'" in banner
    assert explorer.branch.value != "leadPt"
    assert explorer.histogram is None or explorer.histogram.branch == explorer.branch.value
    wait_until(lambda: explorer.histogram is not None, timeout=90)
    assert explorer.histogram.branch == explorer.branch.value != "leadPt"
    # a second new branch that was never valid is not listed either
    builder.add_new.click()
    builder.new_box.children[-1].definition.value = "log("
    wait_until(lambda: "new_branch_1: not shown, not valid yet" in html.unescape(explorer.banner.value), timeout=90)
    assert "new_branch_1" not in explorer.branch.options
    builder.delete_entry("new_branch", "new_branch_1")
    row = builder.new_box.children[0]
    row.definition.value = "max(jetPt)"  # valid again: listed, banner gone
    wait_until(lambda: "leadPt" in explorer.branch.options and explorer.banner.value == "", timeout=90)
    explorer.branch.value = "leadPt"
    wait_until(lambda: explorer.histogram is not None and explorer.histogram.branch == "leadPt", timeout=90)
    assert explorer.histogram.before["signal"].sum() == lead


def test_a_failing_histogram_leaves_no_old_figure(state):
    explorer = BranchExplorer(state, debounce=0.01)
    explorer.update()
    assert explorer.image.value[:4] == b"\x89PNG"
    state.preproc = {"flat_cut": {"HT": {"cut": "HT > 1"}}, "new_branch": {"bad": {"def": "log(nosuch)"}}}
    explorer.update()
    assert explorer.image.value == b"" and explorer.histogram is None
    assert "nosuch" in html.unescape(explorer.status.value)


def test_explorer_weights_significance_and_classes(tth):
    state = WorkbenchState(files=[str(tth["signal"]), str(tth["background"])], labels=["1", "0"],
                           sample_size=3000, params={"weight": {"expr": "weight", "scale": [0.1, 2.0]}},
                           preproc={"flat_cut": {"HT": {"cut": "HT > 200"}}})
    explorer = BranchExplorer(state, debounce=0.01)
    explorer.update()
    classes = html.unescape(explorer.classes.value)
    assert "label 1</b>: signal, label 1 (the score is P(signal))" in classes and "weighted by" in classes
    table = html.unescape(explorer.cutflow.value)
    assert "S/√B" in table and "label 1</span> Σw" in table and "±" in table
    row = explorer.cutflow_rows[1]
    assert row["s_over_sqrt_b"] == pytest.approx(row["per_group_weighted"]["label 1"]
                                                 / math.sqrt(row["per_group_weighted"]["label 0"]))
    explorer.n_minus_1.value = True
    explorer.lower.value = "signal / background"
    explorer.branch.value = "HT"
    explorer.update()
    assert explorer.histogram.n_minus_1 and explorer.histogram.cut_values == [200.0]
    assert explorer.image.value[:4] == b"\x89PNG"


def test_units_come_from_branch_titles():
    from mlaas4hep_lab.widgets.hepplot import unit_from_title

    assert unit_from_title("jet p_{T} [GeV]") == "GeV"
    assert unit_from_title("missing E_T (GeV)") == "GeV"
    assert unit_from_title("HT/F") == "" and unit_from_title("") == ""
    assert unit_from_title("jetPt[nJets]") == "" and unit_from_title("px[n]/F") == ""  # dimensions, not units


def test_a_redraw_that_reuses_the_frame_gives_the_pixels_of_a_fresh_drawing():
    """HepPlotter keeps the frame's pixels (axes, ticks, labels, legend) while they stay the same
    and draws only the data over them: the PNG must equal a drawing from scratch, and a change
    of the limits must draw a new frame."""
    import io

    from PIL import Image

    from mlaas4hep.explore import Histogram
    from mlaas4hep_lab.widgets.hepplot import HepPlotter, PlotOptions

    edges = np.linspace(0.0, 10.0, 11)
    before = {"signal": np.full(10, 1e5), "background": np.full(10, 1.2e5)}  # small error bars

    def histogram(after_scale: float, top: float = 1.0) -> Histogram:
        b = {g: v * top for g, v in before.items()}
        after = {g: v * after_scale * np.linspace(0.2, 1.0, 10) for g, v in b.items()}
        return Histogram("x", "values", edges, b, after, dict(b), dict(after))

    def pixels(png: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))

    opts = PlotOptions(colours={"signal": "#e42536", "background": "#3f90da"}, signal="signal", style="CMS",
                       lower="signal / background", unit="GeV")
    kept = HepPlotter()
    kept.draw(histogram(0.9), opts)
    second = kept.draw(histogram(0.4), opts)
    assert kept.frame_reused == 1
    np.testing.assert_array_equal(pixels(second), pixels(HepPlotter().draw(histogram(0.4), opts)))
    assert not np.array_equal(pixels(second), pixels(kept.draw(histogram(0.9), opts)))  # the data did change
    taller = kept.draw(histogram(0.4, top=3.0), opts)  # other y limits: other tick labels
    assert kept.frame_reused == 2
    np.testing.assert_array_equal(pixels(taller), pixels(HepPlotter().draw(histogram(0.4, top=3.0), opts)))


def test_an_edit_after_a_quiet_time_is_shown_at_once_and_quick_ones_fold():
    """The explorer's schedule: the first change after a quiet time updates after SETTLE, not the
    whole debounce; a burst of changes costs one update, and a request to list the branches again
    is not lost when a plain one folds into it."""
    from mlaas4hep_lab.widgets.explorer import SETTLE

    explorer = BranchExplorer(WorkbenchState(), debounce=5.0)  # no files: nothing scheduled yet
    calls = []
    explorer.update = lambda options=False: calls.append(options)
    explorer.schedule(options=True)
    explorer.schedule()
    explorer.schedule()
    wait_until(lambda: calls, timeout=2.0)  # well before the 5 s debounce
    time.sleep(10 * SETTLE)
    assert calls == [True]


TITLED_FILE = """
import array, sys
import ROOT
f = ROOT.TFile(sys.argv[1], "RECREATE")
t = ROOT.TTree("Events", "titled branches")
pt, n = array.array("f", [0.0]), array.array("i", [0])
t.Branch("jetPt", pt, "jetPt/F").SetTitle("leading jet p_{T} [GeV]")
t.Branch("nJets", n, "nJets/I")
for i in range(300):
    pt[0], n[0] = 20.0 + i, i % 7
    t.Fill()
t.Write()
f.Close()
"""


TITLED = Path(__file__).parent / "data" / "titled-root640.root"  # TITLED_FILE's output


def _axis_label(explorer: BranchExplorer) -> str:
    """The x axis label of the figure the explorer drew last."""
    fig, ax, low, _ = next(iter(explorer._plotter._figures.values()))
    return (low or ax).get_xlabel()


def test_units_come_from_the_branch_title_in_a_root_written_file_or_from_the_user():
    """A branch title with a unit (as ROOT writes them; uproot writes none) labels the axis; a
    unit the user types is kept per branch in the workbench state and wins over the title.
    The file: TITLED_FILE run once with CERN ROOT 6.40 (``pip install root``), checked in."""
    path = TITLED
    from mlaas4hep.explore import Sample

    assert Sample([str(path)], n_events=10).branches["jetPt"].title == "leading jet p_{T} [GeV]"
    state = WorkbenchState(files=[str(path)], sample_size=300)
    explorer = BranchExplorer(state, debounce=0.01)
    wait_until(lambda: explorer.updates >= 1)
    explorer.branch.value = "jetPt"
    wait_until(lambda: explorer.histogram is not None and explorer.histogram.branch == "jetPt")
    assert explorer.unit.value == "GeV"
    wait_until(lambda: _axis_label(explorer) == "jetPt [GeV]")
    explorer.unit.value = "TeV"  # the user's unit for this branch
    assert state.units == {"jetPt": "TeV"}
    wait_until(lambda: _axis_label(explorer) == "jetPt [TeV]")
    explorer.branch.value = "nJets"  # its title is ROOT's leaf list "nJets/I": no unit
    assert explorer.unit.value == "" and state.units == {"jetPt": "TeV"}
    wait_until(lambda: explorer.histogram.branch == "nJets" and _axis_label(explorer) == "nJets")
    explorer.branch.value = "jetPt"
    assert explorer.unit.value == "TeV"
    explorer.unit.value = ""  # cleared: back to the title's
    assert state.units == {} and explorer.unit_of("jetPt") == "GeV"


def test_the_workbench_takes_units_per_branch(tth):
    from mlaas4hep_lab import Workbench

    wb = Workbench(files=[str(tth["signal"])], sample_size=500, units={"HT": "GeV"})
    assert wb.state.units == {"HT": "GeV"} and wb.explorer.unit_of("HT") == "GeV"
    assert wb.explorer.unit_of("MET") == ""  # uproot wrote the demo files: no titles, no unit
    from mlaas4hep.datagen import UNITS

    assert set(UNITS) <= set(wb.state.sample().kinds)  # the demo's units name its branches
