"""params.json: every key, how it is read and checked, and the typed :class:`Params`.

:func:`validate_params` is the one check of a params mapping (the command line, ``Dataset``,
the jobs API and the notebook all use it): every mistake is one
:class:`~mlaas4hep.errors.ConfigError` naming the key and what would be right. Numbers are
checked when loaded: NaN and ±inf are refused, fractions lie in [0, 1), counts and durations
within sane limits. The original MLaaS4HEP spellings are accepted as-is (``"True"`` strings,
``""`` for an empty list, ``split``, ``nan``, ``chunk_size: -1``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError, did_you_mean

# ---------------------------------------------------------------------------------------------
# coercers: each takes (value, where) and returns the typed value or raises ConfigError

Coercer = Callable[[Any, str], Any]


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"expected true or false, got {value!r}", where=where)


def _number(value: Any, where: str, what: str = "a number") -> float:
    """A finite float from a JSON number or a numeric string; never bool, NaN or ±inf."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"expected {what}, got {value!r}", where=where)
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"expected {what}, got {value!r}", where=where) from None
    if not math.isfinite(number):
        raise ConfigError(f"expected {what}, got {value!r} (NaN and infinity are not allowed)", where=where)
    return number


def _int(minimum: int, maximum: int, allow: Sequence[int] = ()) -> Coercer:
    """An integer in [minimum, maximum] (or one of ``allow``); 5.0 and "5" are 5, 5.5 is refused."""

    def coerce(value: Any, where: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
                number = int(value.strip())
            else:
                as_float = _number(value, where, "an integer")
                if not as_float.is_integer():
                    raise ConfigError(f"expected an integer, got {value!r}", where=where)
                number = int(as_float)
        if number in allow:
            return number
        if not minimum <= number <= maximum:
            also = f" (or {', '.join(map(str, allow))})" if allow else ""
            if number < minimum:
                raise ConfigError(f"expected an integer >= {minimum}{also}, got {number}", where=where)
            raise ConfigError(f"expected an integer from {minimum} to {maximum:,}{also}, got {number:,}",
                              where=where)
        return number

    return coerce


def _float(minimum: float, maximum: float, *, above: bool = False) -> Coercer:
    """A finite number in [minimum, maximum] (or (minimum, maximum] with ``above``)."""

    def coerce(value: Any, where: str) -> float:
        number = _number(value, where)
        low_ok = number > minimum if above else number >= minimum
        if not low_ok or number > maximum:
            low = f"above {minimum:g}" if above else f"from {minimum:g}"
            raise ConfigError(f"expected a number {low} to {maximum:g}, got {value!r}", where=where)
        return number

    return coerce


def _fraction(value: Any, where: str) -> float:
    number = _number(value, where, "a fraction")
    if not 0.0 <= number < 1.0:
        raise ConfigError(f"expected a fraction from 0 to below 1, got {value!r}", where=where)
    return number


def _feature_value(value: Any, where: str) -> float:
    """A value a float32 feature can hold (|x| < 3.4e38), finite."""
    number = _number(value, where)
    if abs(number) > 3.4e38:
        raise ConfigError(f"expected a number a float32 feature can hold (|x| < 3.4e38), got {value!r}", where=where)
    return number


def _nan_value(value: Any, where: str) -> float:
    if isinstance(value, float) and math.isnan(value) or isinstance(value, str) and value.strip().lower() == "nan":
        raise ConfigError("NaN cannot be the value that NaN becomes: a model cannot learn from NaN", where=where,
                          hint="give a finite number; 0 is what the original's training put in their place")
    return _feature_value(value, where)


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, got {value!r}", where=where)
    return value.strip()


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    """A list of names: a JSON list, a comma-separated string, or "" / null for none."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(f"expected a list of branch names or a comma-separated string, got {value!r}", where=where)


def _choice(*options: str) -> Coercer:
    def coerce(value: Any, where: str) -> str:
        if value not in options:
            raise ConfigError(f"expected one of {', '.join(repr(o) for o in options)}, got {value!r}", where=where,
                              hint=did_you_mean(str(value), options))
        return value

    return coerce


MAX_JDIM = 100_000


def _jdim(value: Any, where: str) -> int | dict[str, int] | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return {str(k): _int(1, MAX_JDIM)(v, f"{where}.{k}") for k, v in value.items()}
    return _int(1, MAX_JDIM)(value, where)


#: early_stopping keys and their defaults
EARLY_STOPPING = {"monitor": "val_loss", "patience": 3, "restore_best": True, "min_delta": 0.0}


def _early_stopping(value: Any, where: str) -> dict[str, Any] | None:
    """``{"monitor": "val_loss", "patience": n, "restore_best": true, "min_delta": 0}``; null,
    "" or {} for none."""
    if value is None or value == "" or value == {}:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"expected an object like {{\"monitor\": \"val_loss\", \"patience\": 3}}, got {value!r}",
                          where=where)
    out = dict(EARLY_STOPPING)
    for key, item in value.items():
        if key not in EARLY_STOPPING:
            raise ConfigError(f"unknown key {key!r}", where=f"{where}.{key}",
                              hint=did_you_mean(key, EARLY_STOPPING) or "known keys: " + ", ".join(EARLY_STOPPING))
        if key == "monitor":
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(f"expected a metric name such as 'val_loss', got {item!r}", where=f"{where}.{key}")
            out[key] = item.strip()
        elif key == "patience":
            out[key] = _int(1, 1_000_000)(item, f"{where}.{key}")
        elif key == "restore_best":
            out[key] = _bool(item, f"{where}.{key}")
        else:
            out[key] = _float(0.0, 1e30)(item, f"{where}.{key}")
    return out


def _weight(value: Any, where: str) -> dict[str, Any] | None:
    """Event weights: ``"genWeight"`` or an expression (``"genWeight * 0.012"``), or
    ``{"expr": ..., "scale": [one number per file]}``; null or "" for none (every event 1)."""
    from .expr import compile_expression  # expr does not import params; kept local to stay light

    if value is None or value == "":
        return None
    scale = None
    if isinstance(value, dict):
        for key in value:
            if key not in ("expr", "scale"):
                raise ConfigError(f"unknown key {key!r}", where=f"{where}.{key}",
                                  hint=did_you_mean(key, ("expr", "scale")) or "keys are expr and scale")
        if "expr" not in value:
            raise ConfigError("missing 'expr' (the branch or expression giving each event's weight)", where=where)
        text, scale = value["expr"], value.get("scale")
    else:
        text = value
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"expected a branch name or an expression such as 'genWeight * 0.01', got {text!r}",
                          where=where)
    compile_expression(text, f"{where}" + (".expr" if isinstance(value, dict) else ""))
    if scale is not None:
        items = scale if isinstance(scale, list) else [scale]
        if not items:
            raise ConfigError("expected one scale per file (a list of numbers), got []", where=f"{where}.scale")
        scale = [_float(0.0, 1e300)(x, f"{where}.scale[{i}]") for i, x in enumerate(items)]
        if not isinstance(value["scale"], list):
            scale = scale[0]
    return {"expr": text.strip(), "scale": scale}


@dataclass(frozen=True)
class ParamSpec:
    coerce: Coercer
    default: Any
    doc: str


#: Every params.json key: how it is read, its default and what it means. README documents each.
PARAMS: dict[str, ParamSpec] = {
    "nevts": ParamSpec(_int(1, 2**62, allow=(-1,)), -1,
                       "total number of events to use across all files; -1 = all"),
    "chunk_size": ParamSpec(_int(1, 1_000_000_000, allow=(-1,)), 10000,
                            "events per chunk handed to training; -1 = every event in one chunk (the original's "
                            "spelling; the whole dataset must then fit in memory)"),
    "epochs": ParamSpec(_int(1, 1_000_000), 5, "training epochs (per chunk in chunk mode)"),
    "batch_size": ParamSpec(_int(1, 100_000_000), 100, "training batch size"),
    "shuffle": ParamSpec(_bool, True, "shuffle events inside each chunk"),
    "mode": ParamSpec(_choice("chunk", "standard"), "chunk",
                      "'chunk': train each chunk for 'epochs' epochs (the original); 'standard': 'epochs' passes "
                      "over the whole dataset"),
    "validation_split": ParamSpec(_fraction, 0.2, "fraction of each chunk's training rows held out for "
                                                  "val_loss and the val metrics"),
    "split": ParamSpec(_fraction, None, "the original's name of the validation fraction: used as "
                                        "validation_split when that key is absent"),
    "test_fraction": ParamSpec(_fraction, 0.1, "fraction of all events held out (the same ones in every "
                                               "epoch) for the final test metrics"),
    "nan": ParamSpec(_nan_value, 0.0, "the feature value that NaN and ±inf values become (after normalisation); "
                                      "padding of jagged branches stays 0"),
    "cache": ParamSpec(_bool, False, "keep the selected events of the first pass on local disk after the run, "
                                     "so that later epochs and runs with the same inputs never read ROOT again"),
    "memory_mb": ParamSpec(_int(64, 1 << 20), 1024, "memory budget in MB of the reading and mixing buffers, "
                                                    "whatever the number of files, events and branches"),
    "seed": ParamSpec(_int(0, 2**32 - 1), 0, "seed of the shuffling (and of anything else random)"),
    "branch": ParamSpec(_str, "Events", "name of the TTree to read"),
    "identifier": ParamSpec(_str_list, (), "branches that identify an event; never features. Empty: run, event "
                                           "and luminosityBlock, those the files have (as the original)"),
    "selected_branches": ParamSpec(_str_list, (), "branches to use as features; empty = all"),
    "exclude_branches": ParamSpec(_str_list, (), "branches never to use as features (one the files lack is "
                                                 "reported as a warning)"),
    "redirector": ParamSpec(_str, "", "XRootD redirector put before file names that are not local, "
                                      "e.g. root://cms-xrd-global.cern.ch"),
    "use_masks": ParamSpec(_bool, False, "add a mask column per jagged element (1 = real, 0 = padding)"),
    "jdim": ParamSpec(_jdim, None, f"cap on padded jagged length (1 to {MAX_JDIM:,}): an integer for all jagged "
                                   "branches or {branch: n}; longer events are clipped and counted"),
    "retries": ParamSpec(_int(0, 100), 3, "retries of a failed remote read, with exponential backoff"),
    "retry_wait": ParamSpec(_float(0.0, 3600.0), 0.5, "seconds before the first retry (doubles each time; "
                                                      "0 to 3600)"),
    "timeout": ParamSpec(_float(0.1, 86400.0), 30.0, "seconds to wait for a remote server before a read counts "
                                                     "as failed (0.1 to 86400)"),
    "read_threads": ParamSpec(_int(0, 256), 0, "threads that decompress ROOT baskets in parallel (0 to 256); "
                                               "0 = one per CPU (at most 8), 1 = decompress in the reading thread"),
    "cache_dir": ParamSpec(_str, "", "folder of the specs cache and the row stores; default "
                                     "$MLAAS4HEP_CACHE_DIR or ~/.cache/mlaas4hep"),
    "specs_cache": ParamSpec(_bool, True, "reuse a cached specs pass when nothing it depends on changed"),
    "early_stopping": ParamSpec(_early_stopping, None, "standard mode: stop when 'monitor' (default val_loss) has not "
                                                       "improved by 'min_delta' for 'patience' epochs; with "
                                                       "'restore_best' (default) the best epoch's model is the artifact"),
    "weight": ParamSpec(_weight, None, "each event's weight: a branch or an expression (e.g. 'genWeight * xsec * "
                                       "lumi / nevents'), or {\"expr\": ..., \"scale\": [one number per file]}; "
                                       "used in training (sample weights), the weighted event counts of the specs, "
                                       "the explorer's yields and the weighted test AUC"),
    "verbose": ParamSpec(_int(0, 10), 0, "verbosity of the command line"),
    "hist": ParamSpec(_str, "", "accepted for compatibility with the original params.json; unused"),
}

#: Keys read only to fill another key (the original's spellings); not fields of :class:`Params`.
ALIASES = {"split": "validation_split"}


@dataclass(frozen=True)
class Params:
    """params.json, typed. Build with :func:`load_params` or :func:`validate_params`."""

    nevts: int = -1
    chunk_size: int = 10000
    epochs: int = 5
    batch_size: int = 100
    shuffle: bool = True
    mode: str = "chunk"
    validation_split: float = 0.2
    test_fraction: float = 0.1
    nan: float = 0.0
    cache: bool = False
    memory_mb: int = 1024
    seed: int = 0
    branch: str = "Events"
    identifier: tuple[str, ...] = ()
    selected_branches: tuple[str, ...] = ()
    exclude_branches: tuple[str, ...] = ()
    redirector: str = ""
    use_masks: bool = False
    jdim: int | dict[str, int] | None = None
    retries: int = 3
    retry_wait: float = 0.5
    timeout: float = 30.0
    read_threads: int = 0
    cache_dir: str = ""
    specs_cache: bool = True
    early_stopping: dict[str, Any] | None = None
    weight: dict[str, Any] | None = None
    verbose: int = 0
    hist: str = ""
    source: str = field(default="params", compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> Params:
        """A copy with ``changes``, each checked as if it came from params.json."""
        return validate_params({**self.to_dict(), **changes}, self.source)


def _coerce_param(key: str, value: Any, source: str) -> Any:
    spec = PARAMS.get(key)
    if spec is None:
        raise ConfigError(
            f"unknown key {key!r}", where=source,
            hint=did_you_mean(key, PARAMS) or "known keys: " + ", ".join(PARAMS),
        )
    return spec.coerce(value, f"{source}: {key}")


def validate_params(data: Mapping[str, Any], source: str = "params") -> Params:
    """Check every key of a params mapping and build :class:`Params`; ``source`` names it in
    errors (a file name, ``request.params``). Raises :class:`ConfigError` on the first mistake."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a JSON object {{...}}, got {type(data).__name__}", where=source)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"keys must be strings, got {key!r}", where=source)
        values[key] = _coerce_param(key, value, source)
    for alias, target in ALIASES.items():
        if alias not in values:
            continue
        given = values.pop(alias)
        if given is None:
            continue
        if target in values and values[target] != given:
            raise ConfigError(
                f"both {alias!r} ({given}) and {target!r} ({values[target]}) are given", where=source,
                hint=f"{alias!r} is the original's name of {target!r}; keep one of them")
        values[target] = given
    if values.get("early_stopping") and values.get("mode", "chunk") != "standard":
        raise ConfigError("early_stopping needs mode 'standard' (epochs over the whole dataset); in chunk mode each "
                          "chunk is trained once", where=f"{source}: early_stopping", hint='add "mode": "standard"')
    return Params(**values, source=source)


def load_params(source: str | os.PathLike | Mapping[str, Any] | Params | None = None) -> Params:
    """params.json (a path, a dict, or None for defaults) as :class:`Params`."""
    if isinstance(source, Params):
        return source
    if source is None:
        return Params()
    name, data = load_json_object(source, "params")
    return validate_params(data, name)


def load_json_object(source: str | os.PathLike | Mapping[str, Any], what: str) -> tuple[str, dict]:
    """Read a JSON object from a path (or take a mapping); errors name the file and line."""
    if isinstance(source, Mapping):
        return what, dict(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"expected a path of a {what} JSON file or a dict, got {type(source).__name__}",
                          where=what)
    path = Path(source)
    name = str(source)
    try:
        if not path.exists():
            raise ConfigError(f"{what} file not found", where=name)
        if path.is_dir():
            raise ConfigError(f"expected a {what} JSON file, got a folder", where=name)
        text = path.read_text()
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"cannot read {what} file: {err}", where=name) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}", where=name
        ) from None
    except RecursionError:
        raise ConfigError("not valid JSON: nested too deeply", where=name) from None
    if not isinstance(data, dict):
        raise ConfigError(f"expected a JSON object {{...}}, got {type(data).__name__}", where=name)
    return name, data
