"""params.json, preproc.json, files.txt and labels.txt: the original contracts, and errors."""

import json

import pytest

from mlaas4hep import ConfigError, load_params, load_preproc
from mlaas4hep.config import PARAMS, Params, load_labels, load_list

# The paper's Figure 4, as printed (string booleans, cut_1/cut_2, chained comparison).
FIGURE4_TEXT = """
{"new_branch": {
   "log_partonE": {"def": "log(partonE)", "type": "jagged",
                   "cut_1": ["log_partonE<6.31", "any"], "cut_2": ["log_partonE>5.85", "all"],
                   "remove": "False", "keys_to_remove": ["partonE"]},
   "nJets_square": {"def": "nJets**2", "type": "flat",
                    "cut": "1<=nJets_square<=16",
                    "remove": "False", "keys_to_remove": ["nJets"]}},
 "flat_cut": {"nLeptons": {"cut": "0<=nLeptons<=2", "remove": "False"}},
 "jagged_cut": {"partonPt": {"cut": ["partonPt>200", "all"], "remove": "False"}}}
"""


def test_figure4_loads_as_published(tmp_path):
    path = tmp_path / "preproc.json"
    path.write_text(FIGURE4_TEXT)
    pre = load_preproc(path)
    assert [nb.name for nb in pre.new_branches] == ["log_partonE", "nJets_square"]
    log_e = pre.new_branches[0]
    assert log_e.kind == "jagged" and log_e.remove is False and log_e.keys_to_remove == ("partonE",)
    assert [(c.text, c.mode) for c in log_e.cuts] == [("log_partonE<6.31", "any"), ("log_partonE>5.85", "all")]
    assert [c.label for c in pre.cuts] == [
        "any(log_partonE<6.31)", "all(log_partonE>5.85)", "1<=nJets_square<=16", "0<=nLeptons<=2",
        "all(partonPt>200)",
    ]
    assert pre.to_dict() == json.loads(FIGURE4_TEXT)


def test_key_order_and_boolean_spellings_do_not_matter(figure4):
    shuffled = {
        "jagged_cut": figure4["jagged_cut"],
        "flat_cut": {"nLeptons": {"remove": False, "cut": "0<=nLeptons<=2"}},
        "new_branch": dict(reversed(list(figure4["new_branch"].items()))),
    }
    shuffled["new_branch"]["log_partonE"] = dict(reversed(list(figure4["new_branch"]["log_partonE"].items())))
    a, b = load_preproc(figure4), load_preproc(shuffled)
    assert sorted(c.label for c in a.cuts) == sorted(c.label for c in b.cuts)
    assert a.flat_cuts[0].remove is b.flat_cuts[0].remove is False
    # the cache key only depends on content
    assert load_preproc(json.loads(json.dumps(figure4, sort_keys=True))).canonical() == a.canonical()


def test_cut_numbering_orders_cuts():
    pre = load_preproc({"flat_cut": {"x": {"cut_10": "x<9", "cut_2": "x>1", "cut": "x!=5"}}})
    assert [c.text for c in pre.cuts] == ["x!=5", "x>1", "x<9"]


def test_params_defaults_and_original_keys(tmp_path):
    path = tmp_path / "params.json"
    path.write_text(json.dumps({
        "nevts": 50000, "shuffle": "True", "chunk_size": 10000, "epochs": 5, "batch_size": 100,
        "identifier": "", "branch": "Events", "selected_branches": "",
        "exclude_branches": ["run", "event", "luminosityBlock"], "hist": "pdfs", "redirector": "",
        "verbose": 1,
    }))
    p = load_params(path)
    assert p.nevts == 50000 and p.shuffle is True and p.identifier == () and p.selected_branches == ()
    assert p.exclude_branches == ("run", "event", "luminosityBlock")
    assert Params().nevts == -1 and Params().branch == "Events"
    assert load_params({"identifier": "run, event"}).identifier == ("run", "event")


def test_every_param_is_documented_in_the_readme():
    import pathlib

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    missing = [key for key in PARAMS if f"`{key}`" not in readme]
    assert not missing, f"README does not document params {missing}"


@pytest.mark.parametrize("params, message", [
    ({"chunk_sise": 100}, "unknown key 'chunk_sise' \\(did you mean 'chunk_size'"),
    ({"chunk_size": 0}, "chunk_size: expected an integer >= 1 \\(or -1\\), got 0"),
    ({"nevts": -5}, "nevts: expected an integer >= 1 \\(or -1\\), got -5"),
    ({"nevts": "lots"}, "nevts: expected an integer, got 'lots'"),
    ({"shuffle": "yes"}, "shuffle: expected true or false, got 'yes'"),
    ({"exclude_branches": 3}, "exclude_branches: expected a list of branch names"),
    ({"batch_size": 1.5}, "batch_size: expected an integer, got 1.5"),
])
def test_params_mistakes(params, message):
    with pytest.raises(ConfigError, match=message):
        load_params(params)


def test_bad_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "params.json"
    path.write_text('{\n  "nevts": 10,\n  "chunk_size": 5,,\n}')
    with pytest.raises(ConfigError, match=r"params.json: not valid JSON: .* at line 3, column 19"):
        load_params(path)


@pytest.mark.parametrize("preproc, message", [
    ({"new_branchs": {}}, "unknown key 'new_branchs' \\(did you mean 'new_branch'\\?\\)"),
    ({"new_branch": {"x": {"type": "flat"}}}, "new_branch.x: missing 'def'"),
    ({"new_branch": {"x": {"def": "a", "typ": "flat"}}}, "new_branch.x: unknown key 'typ' \\(did you mean 'type'\\?\\)"),
    ({"new_branch": {"x": {"def": "a", "type": "list"}}}, "new_branch.x.type: expected 'flat' or 'jagged'"),
    ({"new_branch": {"x y": {"def": "a"}}}, "must be a valid identifier"),
    ({"new_branch": {"x": {"def": "x + 1"}}}, "defined in terms of itself"),
    ({"jagged_cut": {"pt": {"cut": "pt>1"}}}, "jagged_cut.pt.cut: a cut on a jagged branch needs a mode"),
    ({"jagged_cut": {"pt": {"cut": ["pt>1", "some"]}}}, "must be \"all\" or \"any\", got 'some'"),
    ({"flat_cut": {"n": {"cut": ["n>1", "all"]}}}, "is a jagged cut, but this branch is flat"),
    ({"flat_cut": {"n": {"remove": True}}}, "flat_cut.n: missing 'cut'"),
    ({"flat_cut": {"n": {"cut": 5}}}, "expected a cut expression string"),
    ({"flat_cut": {"n": {"cut": "n >"}}}, "flat_cut.n.cut: syntax error in 'n >'"),
    ({"flat_cut": {"n": {"cut": "n>1", "remove": "maybe"}}}, "flat_cut.n.remove: expected true or false"),
    ({"flat_cut": []}, "flat_cut: expected an object"),
])
def test_preproc_mistakes(preproc, message):
    with pytest.raises(ConfigError, match=message):
        load_preproc(preproc)


def test_list_files_comments_blank_lines_and_commas(tmp_path):
    path = tmp_path / "files.txt"
    path.write_text("# my files\n\na.root\nb.root  # the second\nc.root, d.root\n")
    entries = load_list(path)
    assert [e.value for e in entries] == ["a.root", "b.root", "c.root", "d.root"]
    assert entries[1].origin == f"{path}:4" and entries[0].base_dir == str(tmp_path)
    assert [e.value for e in load_list("x.root,y.root")] == ["x.root", "y.root"]
    with pytest.raises(ConfigError, match="files list file not found"):
        load_list(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="no entries"):
        load_list(tmp_path / "empty.txt")


def test_labels_integers_or_names_and_count_mismatch(tmp_path):
    assert load_labels(["1", "0"], 2).values == (1, 0)
    named = load_labels(["signal", "background", "signal"], 3)
    assert named.values == (0, 1, 0) and named.classes == ("signal", "background")
    (tmp_path / "labels.txt").write_text("1\n0\n1\n")
    with pytest.raises(ConfigError, match="3 labels for 2 files in files.txt"):
        load_labels(tmp_path / "labels.txt", 2, "files.txt")
    with pytest.raises(ConfigError, match="labels must be >= 0"):
        load_labels(["1", "-1"], 2)
