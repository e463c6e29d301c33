"""A corpus of mistakes a physicist can make, each run through the real command line.

For every mistake: a non-zero exit (2, the user-error status), no traceback, and one
``mlaas4hep: error: ...`` message that says what was wrong and where (the file, and the key
path, branch or line where there is one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot

PREFIX = "mlaas4hep: error: "


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-errors-cache")


@pytest.fixture
def cli(tmp_path, cache_dir):
    """Run ``python -m mlaas4hep.cli ARGS`` in ``tmp_path`` with a private specs cache."""
    env = dict(os.environ, MLAAS4HEP_CACHE_DIR=str(cache_dir))

    def run(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mlaas4hep.cli", *map(str, args)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )

    return run


def user_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    """Check the run failed as a user error and return the message (without the prefix);
    every string in ``expected`` must be in it."""
    stderr = result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(PREFIX)]
    assert len(starts) == 1, f"expected one '{PREFIX}' line:\n{stderr}"
    first = starts[0]
    # before the message: only progress lines of the specs / stream passes
    for line in lines[:first]:
        assert line.startswith(("specs", "stream")), f"unexpected stderr line {line!r}:\n{stderr}"
    # after its first line: only the message's own indented continuation (e.g. a caret display)
    for line in lines[first + 1:]:
        assert line.startswith(" "), f"unexpected stderr line {line!r} after the error:\n{stderr}"
    message = "\n".join(lines[first:])[len(PREFIX):]
    for text in expected:
        assert text in message, f"{text!r} not in the message:\n{message}"
    return message


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def write_json(path: Path, data: object) -> Path:
    return write(path, json.dumps(data, indent=2) + "\n")


@pytest.fixture
def inputs(tth):
    """The ttH-like files.txt and labels.txt."""
    return ["--files", tth["files"], "--labels", tth["labels"]]


# ---------------------------------------------------------------------------------------------
# params.json


def test_params_bad_json_names_line_and_column(cli, inputs, tmp_path):
    params = write(tmp_path / "params.json", '{\n  "chunk_size": 100,\n  "epochs": 2\n  "nevts": -1\n}\n')
    user_error(cli("specs", *inputs, "--params", params),
               str(params), "not valid JSON", "Expecting ',' delimiter", "line 4, column 3")


def test_params_unknown_key_suggests_the_right_one(cli, inputs, tmp_path):
    params = write_json(tmp_path / "params.json", {"chunk_sise": 100})
    user_error(cli("specs", *inputs, "--params", params),
               f"{params}: unknown key 'chunk_sise'", "did you mean 'chunk_size'")


@pytest.mark.parametrize("key, value, expected", [
    ("chunk_size", "lots", "expected an integer, got 'lots'"),
    ("shuffle", "maybe", "expected true or false, got 'maybe'"),
    ("jdim", -3, "expected an integer >= 1, got -3"),
])
def test_params_wrong_value_type_names_the_key(cli, inputs, tmp_path, key, value, expected):
    params = write_json(tmp_path / "params.json", {key: value})
    user_error(cli("specs", *inputs, "--params", params), f"{params}: {key}: {expected}")


def test_params_not_an_object(cli, inputs, tmp_path):
    params = write(tmp_path / "params.json", "[1, 2]\n")
    user_error(cli("specs", *inputs, "--params", params), str(params), "expected a JSON object", "got list")


def test_params_file_missing(cli, inputs, tmp_path):
    user_error(cli("specs", *inputs, "--params", tmp_path / "parms.json"), "parms.json", "params file not found")


# ---------------------------------------------------------------------------------------------
# preproc.json


def test_preproc_bad_json_names_line_and_column(cli, inputs, tmp_path):
    preproc = write(tmp_path / "preproc.json",
                    '{\n  "flat_cut": {\n    "nLeptons": {"cut": "nLeptons < 2",}\n  }\n}\n')
    user_error(cli("specs", *inputs, "--preproc", preproc),
               str(preproc), "not valid JSON", "line 3, column 40")


def test_preproc_unknown_top_key_suggests_the_right_one(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"flat_cuts": {"nLeptons": {"cut": "nLeptons < 2"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: unknown key 'flat_cuts'", "did you mean 'flat_cut'")


def test_preproc_unknown_key_in_a_new_branch(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"new_branch": {"ht2": {"defn": "HT**2"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: new_branch.ht2: unknown key 'defn'", "did you mean 'def'")


def test_expression_syntax_error_points_at_the_column(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"flat_cut": {"nLeptons": {"cut": "nLeptons <= (2"}}})
    message = user_error(cli("specs", *inputs, "--preproc", preproc),
                         f"{preproc}: flat_cut.nLeptons.cut", "syntax error in 'nLeptons <= (2'", "column 13")
    assert message.splitlines()[-1].rstrip().endswith("^")


@pytest.mark.parametrize("expression, expected", [
    ("__import__('os').system('touch PWNED')", "only the whitelisted functions can be called"),
    ("__import__('os')", "unknown function '__import__'"),
    ("HT.__class__", "attribute access is not allowed"),
    ("[x for x in HT]", "a comprehension is not allowed"),
])
def test_expression_forbidden_construct_is_refused_not_run(cli, inputs, tmp_path, expression, expected):
    preproc = write_json(tmp_path / "preproc.json", {"new_branch": {"evil": {"def": expression}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: new_branch.evil.def", expected, repr(expression))
    assert not (tmp_path / "PWNED").exists()


def test_expression_unknown_branch_suggests_the_right_one(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"new_branch": {"logE": {"def": "log(partonEE)"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: new_branch.logE.def", "unknown branch 'partonEE' in 'log(partonEE)'",
               "did you mean 'partonE'")


def test_flat_cut_on_a_jagged_branch(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"flat_cut": {"partonPt": {"cut": "partonPt > 200"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: flat_cut.partonPt", "a flat cut on jagged branch 'partonPt'", "jagged_cut")


def test_jagged_cut_on_a_flat_branch(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"jagged_cut": {"nLeptons": {"cut": ["nLeptons < 2", "all"]}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: jagged_cut.nLeptons", "a jagged cut on flat branch 'nLeptons'", "flat_cut")


def test_jagged_cut_without_a_mode(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"jagged_cut": {"partonPt": {"cut": "partonPt > 200"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: jagged_cut.partonPt.cut", "needs a mode", '"all"', '"any"')


def test_new_branch_declared_flat_but_jagged_expression(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"new_branch": {"logE": {"def": "log(partonE)", "type": "flat"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: new_branch.logE.type", "declared type 'flat'", "'log(partonE)' gives a jagged value",
               "partonE (jagged)", "reducer")


def test_reducer_on_a_flat_branch(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"new_branch": {"maxHT": {"def": "max(HT)"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: new_branch.maxHT.def", "max() reduces a jagged value", "'HT' is flat")


def test_new_branch_with_the_name_of_an_existing_branch(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"new_branch": {"HT": {"def": "MET * 2"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: new_branch.HT", "new branch 'HT' has the name of an existing branch")


def test_new_branches_defined_in_a_cycle(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"new_branch": {"a": {"def": "b + HT"}, "b": {"def": "a * 2"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc), f"{preproc}: new_branch", "cycle: a, b")


def test_keys_to_remove_names_an_unknown_branch(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json",
                         {"new_branch": {"nJets2": {"def": "nJets**2", "keys_to_remove": ["nJet"]}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: new_branch.nJets2.keys_to_remove", "unknown branch 'nJet'", "did you mean 'nJets'")


@pytest.mark.parametrize("section, branch, cut, key", [
    ("flat_cut", "nLeptons", "nLeptons + 1", "flat_cut.nLeptons.cut"),
    ("jagged_cut", "partonPt", ["partonPt * 2", "any"], "jagged_cut.partonPt.cut"),
])
def test_cut_that_gives_numbers_not_booleans(cli, inputs, tmp_path, section, branch, cut, key):
    preproc = write_json(tmp_path / "preproc.json", {section: {branch: {"cut": cut}}})
    text = cut if isinstance(cut, str) else cut[0]
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: {key}", f"cut {text!r} gives numbers, not True/False", f"'{text} > 0'")


def test_cut_that_uses_no_branch(cli, inputs, tmp_path):
    preproc = write_json(tmp_path / "preproc.json", {"flat_cut": {"nLeptons": {"cut": "1 < 2"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc),
               f"{preproc}: flat_cut.nLeptons.cut", "cut '1 < 2' does not use any branch")


# ---------------------------------------------------------------------------------------------
# files.txt and labels.txt


def test_files_list_missing(cli, tmp_path):
    user_error(cli("specs", "--files", "nofiles.txt"), "nofiles.txt: files list file not found")


def test_files_list_with_only_comments(cli, tmp_path):
    files = write(tmp_path / "files.txt", "# signal.root\n\n   # background.root\n")
    user_error(cli("specs", "--files", files), str(files), "the files list has no entries", "# comments")


def test_listed_root_file_missing_names_the_line(cli, tth, tmp_path):
    files = write(tmp_path / "files.txt", f"# ttH\n{tth['signal']}\nmissing.root\n")
    user_error(cli("specs", "--files", files), f"{files}:3: missing.root", "ROOT file not found")


def test_labels_list_missing(cli, tth):
    user_error(cli("specs", "--files", tth["files"], "--labels", "lables.txt"),
               "lables.txt: labels list file not found")


def test_labels_count_does_not_match_files(cli, tth, tmp_path):
    labels = write(tmp_path / "labels.txt", "1\n0\n1\n")
    user_error(cli("specs", "--files", tth["files"], "--labels", labels),
               f"{labels}: 3 labels for 2 files in {tth['files']}", "one label per file")


def test_same_file_listed_twice(cli, tth, tmp_path):
    files = write(tmp_path / "files.txt", f"{tth['signal']}\n{tth['background']}\n{tth['signal']}\n")
    labels = write(tmp_path / "labels.txt", "1\n0\n1\n")
    user_error(cli("specs", "--files", files, "--labels", labels),
               f"{files}:3", f"file {tth['signal']} is listed twice", f"also at {files}:1")


def test_negative_label(cli, tth, tmp_path):
    labels = write(tmp_path / "labels.txt", "1\n-1\n")
    user_error(cli("specs", "--files", tth["files"], "--labels", labels), f"{labels}:2", "labels must be >= 0")


# ---------------------------------------------------------------------------------------------
# ROOT files


def test_corrupt_root_file(cli, tth, tmp_path):
    corrupt = tmp_path / "random.root"
    corrupt.write_bytes(os.urandom(20_000))
    files = write(tmp_path / "files.txt", f"{tth['signal']}\nrandom.root\n")
    user_error(cli("specs", "--files", files),
               f"{corrupt} (from {files}:2)", "not a readable ROOT file", "not a ROOT file")


def test_truncated_root_file_fails_while_reading(cli, tth, tmp_path):
    """The first half of a real file: the header and tree are there, the baskets are not."""
    data = tth["signal"].read_bytes()
    half = write_bytes(tmp_path / "signal-half.root", data[: len(data) // 2])
    files = write(tmp_path / "files.txt", "signal-half.root\n")
    user_error(cli("specs", "--files", files),
               f"{half} (from {files}:1)", "corrupt or truncated ROOT file", "tree 'Events'")


def test_truncated_root_file_fails_while_opening(cli, zmumu, tmp_path):
    """The first half of Zmumu: its directory is at the end, so uproot fails at open."""
    data = Path(zmumu).read_bytes()
    half = write_bytes(tmp_path / "zmumu-half.root", data[: len(data) // 2])
    user_error(cli("branches", half, "--tree", "events"), str(half), "corrupt or truncated ROOT file")
    params = write_json(tmp_path / "params.json", {"branch": "events"})
    files = write(tmp_path / "files.txt", f"{half}\n")
    user_error(cli("specs", "--files", files, "--params", params),
               f"{half} (from {files}:1)", "corrupt or truncated ROOT file")


def test_empty_root_file(cli, tmp_path):
    empty = write_bytes(tmp_path / "empty.root", b"")
    user_error(cli("branches", empty), str(empty), "ROOT file")


def test_wrong_tree_name_lists_the_trees(cli, inputs, tmp_path, tth):
    params = write_json(tmp_path / "params.json", {"branch": "events"})
    user_error(cli("specs", *inputs, "--params", params),
               f"{tth['signal']} (from {tth['files']}:1)", "no tree 'events'", "trees in it: 'Events'",
               "did you mean 'Events'")


def test_branches_verb_wrong_tree_lists_the_trees(cli, zmumu):
    user_error(cli("branches", zmumu, "--tree", "Events"), zmumu, "no tree 'Events'", "trees in it: 'events'")


def test_wrong_tree_name_lists_rntuples_too(cli, tmp_path):
    path = tmp_path / "ntuple.root"
    with uproot.recreate(path) as out:
        out["Evnts"] = {"x": np.arange(3.0)}  # uproot 5 writes a dict as an RNTuple
    assert uproot.open(path).classnames() == {"Evnts;1": "ROOT::RNTuple"}
    user_error(cli("specs", "--files", str(path)), "no tree 'Events'", "trees in it: 'Evnts' (RNTuple)",
               "did you mean 'Evnts'")


def test_branches_verb_on_a_missing_file(cli):
    user_error(cli("branches", "nothere.root"), "nothere.root: ROOT file not found")


def test_unknown_selected_branch(cli, inputs, tmp_path, tth):
    params = write_json(tmp_path / "params.json", {"selected_branches": ["HT", "MET", "jetPT"]})
    user_error(cli("specs", *inputs, "--params", params),
               str(tth["signal"]), f"branch 'jetPT' (from {params}: selected_branches)", "not in tree 'Events'",
               "did you mean 'jetPt'")


def test_selecting_a_string_branch(cli, zmumu, tmp_path):
    params = write_json(tmp_path / "params.json", {"branch": "events", "selected_branches": ["Type", "E1"]})
    # a ROOT file given straight to --files, not a list of them
    user_error(cli("specs", "--files", zmumu, "--params", params),
               f"{params}: selected_branches", "branch 'Type' cannot be a feature", "string branch")


def test_unknown_exclude_branch_or_identifier_is_a_warning_not_an_error(cli, inputs, tmp_path):
    """As in the original: a name the files lack is ignored, and said so, naming it."""
    params = write_json(tmp_path / "params.json", {"exclude_branches": ["weigth"], "identifier": ["run", "evnt"]})
    result = cli("specs", *inputs, "--params", params)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and PREFIX not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("mlaas4hep: warning: ")]
    assert warnings == [
        f"mlaas4hep: warning: {params}: identifier: branch 'evnt' is not in the files; ignored (did you mean 'event'?)",
        f"mlaas4hep: warning: {params}: exclude_branches: branch 'weigth' is not in the files; ignored "
        "(did you mean 'weight'?)",
    ]
    assert "event identifiers, not features: run\n" in result.stdout


# ---------------------------------------------------------------------------------------------
# outputs


def test_specs_fout_into_a_missing_folder_fails_before_the_pass(cli, inputs, tmp_path):
    result = cli("specs", *inputs, "--fout", "no-such-folder/specs.json")
    user_error(result, "no-such-folder/specs.json", "folder", "no-such-folder", "does not exist")
    assert "specs [" not in result.stderr  # refused before reading any event
    assert not (tmp_path / "no-such-folder").exists()


def test_specs_fout_is_a_folder(cli, inputs, tmp_path):
    (tmp_path / "out").mkdir()
    user_error(cli("specs", *inputs, "--fout", "out"), "out: --fout names a folder, not a file")


@pytest.mark.parametrize("verb", ["stream", "generate"])
def test_output_folder_that_is_a_file(cli, inputs, tmp_path, verb):
    existing = write(tmp_path / "notes.txt", "my notes\n")
    args = [*inputs, "--save", "notes.txt"] if verb == "stream" else ["--events", 10, "--out", "notes.txt"]
    user_error(cli(verb, *args), "notes.txt: cannot create the", "folder", "it is a file")
    assert existing.read_text() == "my notes\n"


def test_failed_run_keeps_the_existing_specs_file(cli, inputs, tth, tmp_path):
    """Work already done is not lost: a run that fails (before the pass, or in the middle of
    it) leaves an existing --fout file as it was, with no half-written file beside it."""
    fout = tmp_path / "specs.json"
    good = cli("specs", *inputs, "--fout", fout)
    assert good.returncode == 0, good.stderr
    before = fout.read_bytes()
    assert json.loads(before)["events_read"]["total"] == 21_000

    preproc = write_json(tmp_path / "preproc.json", {"flat_cut": {"nLeptons": {"cut": "nLeptons +"}}})
    user_error(cli("specs", *inputs, "--preproc", preproc, "--fout", fout), "flat_cut.nLeptons.cut", "syntax error")
    assert fout.read_bytes() == before

    data = tth["background"].read_bytes()
    write_bytes(tmp_path / "background-half.root", data[: len(data) // 2])
    files = write(tmp_path / "files.txt", f"{tth['signal']}\nbackground-half.root\n")
    user_error(cli("specs", "--files", files, "--fout", fout, "--refresh"),
               "background-half.root", "corrupt or truncated ROOT file")
    assert fout.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "background-half.root", "files.txt", "preproc.json", "specs.json"]


def test_a_correct_run_succeeds(cli, zmumu, tmp_path):
    """The control: the same inputs without the mistake exit 0."""
    params = write_json(tmp_path / "params.json", {"branch": "events", "selected_branches": ["E1", "pt1"]})
    result = cli("specs", "--files", zmumu, "--params", params)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and PREFIX not in result.stderr


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------
# inputs that ended in a traceback (or worse) before: each is one clear error line now


def test_read_threads_out_of_range(cli, inputs, tmp_path):
    params = write_json(tmp_path / "params.json", {"read_threads": 100000})
    user_error(cli("specs", *inputs, "--params", params),
               f"{params}: read_threads: expected an integer from 0 to 256, got 100,000")


@pytest.mark.parametrize("text, expected", [
    ('{"timeout": NaN}', "timeout: expected a number, got nan (NaN and infinity are not allowed)"),
    ('{"validation_split": Infinity}', "validation_split: expected a fraction, got inf"),
    ('{"chunk_size": 1e400}', "chunk_size: expected an integer, got inf"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON: nested too deeply"),
])
def test_params_numbers_and_depth(cli, inputs, tmp_path, text, expected):
    params = write(tmp_path / "params.json", text)
    user_error(cli("specs", *inputs, "--params", params), str(params), expected)


@pytest.mark.parametrize("content", [b"\x00\x01garbage\xff\xfe", b"root" + bytes(range(256)) * 4])
def test_a_damaged_file_given_to_files_is_a_file_not_a_list(cli, tmp_path, content):
    """Whatever its extension: it does not read as a list, so it is the one file to read."""
    for name in ("damaged.root", "events.dat"):
        path = tmp_path / name
        path.write_bytes(content)
        message = user_error(cli("specs", "--files", path), f"{path} (from files[0])")
        assert "list" not in message and ("ROOT file" in message)


def test_a_root_file_with_a_comma_in_its_name_is_one_file(cli, tth, tmp_path):
    import shutil

    odd = shutil.copy(tth["signal"], tmp_path / "sig,nal.root")
    result = cli("specs", "--files", odd)
    assert result.returncode == 0, result.stderr
    assert "12000" in result.stdout.replace(",", "")


def test_a_files_list_that_is_not_text_but_named_txt_is_still_read_as_a_file(cli, tmp_path):
    path = write_bytes(tmp_path / "files.txt", b"\xff\xfe\x00\x01")
    user_error(cli("specs", "--files", path), f"{path} (from files[0])", "ROOT file")


@pytest.mark.parametrize("labels, expected", [
    ("1.5\n0\n", ":1: label '1.5' is a number that is not an integer"),
    ("signal\n0\n", ":2: label '0' is a number but 'signal'"),
    ("99999999999999999999\n0\n", ":1: label 99999999999999999999 is too large"),
])
def test_labels_that_are_not_classes(cli, tth, tmp_path, labels, expected):
    path = write(tmp_path / "labels.txt", labels)
    user_error(cli("specs", "--files", tth["files"], "--labels", path), f"{path}{expected}")


def test_specs_given_as_a_folder_or_binary_file(cli, inputs, tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    binary = write_bytes(tmp_path / "specs.json", b"\xc3\x28\xff")
    model = write(tmp_path / "model.py", "def model(idim):\n    return None\n")
    for given, expected in ((folder, "expected a specs JSON file, got a folder"),
                            (binary, "cannot read the specs file")):
        user_error(cli("workflow", *inputs, "--specs", given, "--model", model, "--output", tmp_path / "out"),
                   str(given), expected)


@pytest.fixture(scope="module")
def artifact(tth, tmp_path_factory):
    """A small PyTorch artifact trained on the ttH files."""
    from support import torch_model

    import mlaas4hep

    need_torch()
    folder = tmp_path_factory.mktemp("artifact")
    model = folder / "model.py"
    model.write_text(torch_model(4))
    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params={"chunk_size": -1, "epochs": 1})
    mlaas4hep.train(ds, model, output=folder / "out")
    return {"path": folder / "out" / "artifact", "model": model}


def need_torch():
    import importlib.util

    from support import need

    need(importlib.util.find_spec("torch") is not None, "torch is not installed")


def damaged_copy(artifact, tmp_path, change):
    import shutil

    copy = tmp_path / "damaged-artifact"
    shutil.copytree(artifact["path"], copy)
    change(copy)
    return copy


@pytest.mark.parametrize("change, expected", [
    (lambda a: (a / "mlaas4hep.json").write_text("[1, 2]"), "expected a JSON object in mlaas4hep.json, got list"),
    (lambda a: (a / "mlaas4hep.json").write_text('{"format": "mlaas4hep-artifact"}'),
     "the artifact's mlaas4hep.json lacks 'framework'"),
    (lambda a: (a / "mlaas4hep.json").write_bytes(b"\xb7\x00\xff" * 100), "cannot read mlaas4hep.json"),
    (lambda a: (a / "model.ts").write_bytes(os.urandom(100)), "cannot read this saved PyTorch file (damaged"),
])
def test_predict_with_a_damaged_artifact(cli, artifact, tth, tmp_path, change, expected):
    damaged = damaged_copy(artifact, tmp_path, change)
    user_error(cli("predict", "--artifact", damaged, "--files", tth["signal"], "--out", tmp_path / "s.root"),
               str(damaged), expected)
    assert not (tmp_path / "s.root").exists()


def test_predict_with_damaged_weights_and_its_model_py(cli, artifact, tth, tmp_path):
    damaged = damaged_copy(artifact, tmp_path, lambda a: (a / "model.pt").write_bytes(os.urandom(100)))
    user_error(cli("predict", "--artifact", damaged, "--files", tth["signal"], "--out", tmp_path / "s.root",
                   "--model", artifact["model"]), f"{damaged}/model.pt", "cannot read this saved PyTorch file")


@pytest.mark.parametrize("branch, expected", [
    ("", "the score branch needs a name without '/', got ''"),
    ("run", "the score branch 'run' would have the name of an identifier or index branch"),
])
def test_predict_score_branch_names(cli, artifact, tth, tmp_path, branch, expected):
    user_error(cli("predict", "--artifact", artifact["path"], "--files", tth["signal"], "--out", tmp_path / "s.root",
                   "--branch", branch), expected)


def test_outputs_that_are_devices_or_pipes_are_refused(cli, artifact, inputs, tth, tmp_path):
    """Writing goes to a temporary file that replaces the target: a pipe (or /dev/full, as root)
    would have been replaced by a regular file."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    user_error(cli("specs", *inputs, "--fout", pipe), f"{pipe}: --fout names a device or special file")
    user_error(cli("predict", "--artifact", artifact["path"], "--files", tth["signal"], "--out", pipe),
               f"{pipe}: --out names a device or special file")
    assert pipe.is_fifo()


@pytest.mark.parametrize("fout", ["../outside", "/tmp/elsewhere", "checkpoint", ".."])
def test_workflow_fout_is_a_name_inside_the_output(cli, inputs, tmp_path, fout):
    model = write(tmp_path / "model.py", "def model(idim):\n    return None\n")
    user_error(cli("workflow", *inputs, "--model", model, "--output", tmp_path / "out", "--fout", fout), "--fout")
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize("args, expected", [
    (["generate", "--events", "100000000000000", "--out", "g"], "--events must be from 1 to 50,000,000 per file"),
    (["generate", "--events", "10", "--seed", "-1", "--out", "g"], "--seed must be from 0 to 2**63-1, got -1"),
    (["demo", "--events", "0", "--out", "g"], "--events must be from 1 to 50,000,000 per file, got 0"),
    (["generate", "--events", "many"], "argument --events: invalid int value: 'many' (see mlaas4hep generate --help)"),
    (["specs"], "the following arguments are required: --files (see mlaas4hep specs --help)"),
    (["frobnicate"], "argument <verb>: invalid choice: 'frobnicate'"),
])
def test_command_line_values(cli, tmp_path, args, expected):
    user_error(cli(*args), expected)
    assert not (tmp_path / "g").exists()


def test_evaluate_bootstrap_is_bounded(cli, artifact, tth, tmp_path):
    user_error(cli("evaluate", "--artifact", artifact["path"], "--files", tth["signal"], "--bootstrap", "1000000000"),
               "--bootstrap must be from 0 to 100,000")


def test_serve_config_that_is_not_text(cli, tmp_path):
    config = write_bytes(tmp_path / "serve.json", b"\xc3\x28\xff")
    user_error(cli("serve", "--config", config), f"{config}: cannot read the config file: it is not UTF-8 text")


@pytest.mark.parametrize("definition, expected", [
    ("-" * 400 + "HT", "is nested 402 levels deep; at most 200 are allowed"),
    ("HT" + " + HT" * 5000, "nested"),
    ("HT + 9223372036854775808", "integer 9223372036854775808 does not fit in 64 bits"),
    ("HT * 10**400", "'10 ** 400' cannot be computed: overflow"),
    ("HT + (9223372036854775807 + 1)", "overflows 64-bit integers"),
    ("sum(jetPt > 30) + ℌT", "unknown branch 'ℌT'"),
])
def test_expressions_that_cannot_be_computed(cli, inputs, tmp_path, definition, expected):
    preproc = write_json(tmp_path / "preproc.json", {"new_branch": {"x": {"def": definition}}})
    user_error(cli("specs", *inputs, "--preproc", preproc), f"{preproc}: new_branch.x.def", expected)
