"""params.json numbers: checked when loaded (NaN, ±inf, ranges), and the original's keys
(`split`, `nan`, `chunk_size: -1`) with their meaning."""

from __future__ import annotations

import json
import math

import pytest

from mlaas4hep import ConfigError
from mlaas4hep.params import PARAMS, Params, load_params, validate_params


@pytest.mark.parametrize("key", [k for k, spec in PARAMS.items()
                                 if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool)]
                         + ["split", "jdim"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "nan", "inf", "-Infinity", 1e309])
def test_no_numeric_param_takes_nan_or_infinity(key, bad):
    with pytest.raises(ConfigError) as info:
        validate_params({key: bad}, "params.json")
    assert str(info.value).startswith(f"params.json: {key}: "), str(info.value)
    assert "expected" in str(info.value) or "NaN cannot be" in str(info.value)


def test_nan_and_infinity_from_a_json_file_are_refused(tmp_path):
    """Python's json reads NaN and Infinity; they must not slip through as numbers."""
    path = tmp_path / "params.json"
    path.write_text('{"validation_split": NaN}')
    with pytest.raises(ConfigError, match=r"params.json: validation_split: expected a fraction, got nan "
                                          r"\(NaN and infinity are not allowed\)"):
        load_params(path)
    path.write_text('{"timeout": Infinity}')
    with pytest.raises(ConfigError, match="timeout: expected a number, got inf"):
        load_params(path)


@pytest.mark.parametrize("key, value, message", [
    ("validation_split", 1.0, "expected a fraction from 0 to below 1, got 1.0"),
    ("validation_split", -0.1, "expected a fraction from 0 to below 1, got -0.1"),
    ("test_fraction", 1, "expected a fraction from 0 to below 1, got 1"),
    ("split", 1.5, "expected a fraction from 0 to below 1, got 1.5"),
    ("read_threads", 100000, "expected an integer from 0 to 256, got 100,000"),
    ("read_threads", -1, "expected an integer >= 0, got -1"),
    ("chunk_size", 10**12, "expected an integer from 1 to 1,000,000,000 (or -1), got 1,000,000,000,000"),
    ("chunk_size", -2, "expected an integer >= 1 (or -1), got -2"),
    ("seed", 2**32, "expected an integer from 0 to 4,294,967,295, got 4,294,967,296"),
    ("seed", -1, "expected an integer >= 0, got -1"),
    ("seed", 2**64 + 0.5, "expected an integer from 0 to 4,294,967,295"),
    ("timeout", 0, "expected a number from 0.1 to 86400, got 0"),
    ("timeout", 1e6, "expected a number from 0.1 to 86400, got 1000000.0"),
    ("retry_wait", -1, "expected a number from 0 to 3600, got -1"),
    ("retry_wait", 86400, "expected a number from 0 to 3600, got 86400"),
    ("retries", 10**6, "expected an integer from 0 to 100, got 1,000,000"),
    ("jdim", 10**9, "expected an integer from 1 to 100,000, got 1,000,000,000"),
    ("jdim", 0, "expected an integer >= 1, got 0"),
    ("epochs", True, "expected an integer, got True"),
    ("batch_size", "12x", "expected an integer, got '12x'"),
    ("nevts", 2**70, "expected an integer from 1 to"),
    ("verbose", [1], "expected an integer, got [1]"),
    ("nan", 1e39, "expected a number a float32 feature can hold"),
])
def test_numbers_out_of_range_name_key_and_range(key, value, message):
    with pytest.raises(ConfigError) as info:
        validate_params({key: value}, "job.params")
    assert str(info.value).startswith(f"job.params: {key}: "), str(info.value)
    assert message in str(info.value)


def test_jdim_per_branch_values_are_checked():
    assert validate_params({"jdim": {"jetPt": 8}}).jdim == {"jetPt": 8}
    with pytest.raises(ConfigError, match=r"jdim.jetPt: expected an integer from 1 to 100,000, got 1,000,000"):
        validate_params({"jdim": {"jetPt": 10**6}})


def test_values_in_range_are_kept_exactly():
    p = validate_params({"read_threads": 256, "seed": 2**32 - 1, "timeout": "2.5", "retry_wait": 0,
                         "chunk_size": "500", "jdim": 100_000, "validation_split": 0.0, "test_fraction": 0.95})
    assert (p.read_threads, p.seed, p.timeout, p.retry_wait, p.chunk_size, p.jdim) == (256, 2**32 - 1, 2.5, 0.0,
                                                                                       500, 100_000)
    assert p.validation_split == 0.0 and p.test_fraction == 0.95


def test_split_is_the_validation_fraction_when_validation_split_is_absent():
    assert validate_params({"split": 0.3}).validation_split == 0.3
    assert validate_params({"split": 0.3, "validation_split": 0.3}).validation_split == 0.3
    assert "split" not in validate_params({"split": 0.3}).to_dict()
    with pytest.raises(ConfigError, match=r"both 'split' \(0.3\) and 'validation_split' \(0.2\) are given"):
        validate_params({"split": 0.3, "validation_split": 0.2})
    assert Params().validation_split == 0.2


def test_nan_is_a_finite_value():
    assert validate_params({"nan": -1}).nan == -1.0
    assert Params().nan == 0.0
    with pytest.raises(ConfigError, match="NaN cannot be the value that NaN becomes"):
        validate_params({"nan": math.nan})
    with pytest.raises(ConfigError, match="NaN cannot be the value that NaN becomes"):
        validate_params({"nan": "NaN"})


def test_chunk_size_minus_one_is_accepted():
    assert validate_params({"chunk_size": -1}).chunk_size == -1


def test_the_originals_params_json_loads_as_is(tmp_path):
    """The original's workflow recipe params.json, with its split and nan keys."""
    path = tmp_path / "params.json"
    path.write_text(json.dumps({
        "nevts": 50000, "shuffle": True, "chunk_size": -1, "epochs": 5, "batch_size": 100, "identifier": "",
        "branch": "Events", "selected_branches": "", "exclude_branches": ["run", "event", "luminosityBlock"],
        "hist": "pdfs", "redirector": "", "verbose": 1, "split": 0.3, "nan": 0,
    }))
    p = load_params(path)
    assert (p.chunk_size, p.validation_split, p.nan, p.identifier) == (-1, 0.3, 0.0, ())


def test_replace_is_checked_like_the_file():
    p = validate_params({"epochs": 2}, "params.json")
    assert p.replace(seed=5).seed == 5 and p.replace(seed=5).epochs == 2
    with pytest.raises(ConfigError, match="params.json: seed: expected an integer >= 0, got -3"):
        p.replace(seed=-3)
    with pytest.raises(ConfigError, match="unknown key 'sed'"):
        p.replace(sed=1)


@pytest.mark.parametrize("data, message", [
    ([1, 2], "expected a JSON object {...}, got list"),
    ({1: 2}, "keys must be strings, got 1"),
])
def test_validate_params_refuses_what_is_not_an_object(data, message):
    with pytest.raises(ConfigError) as info:
        validate_params(data, "request.params")
    assert str(info.value) == f"request.params: {message}"
