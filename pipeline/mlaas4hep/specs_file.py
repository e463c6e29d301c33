"""A specs file given by the user (``workflow --specs``, ``Dataset(specs=...)``): its min/max and
jdim replace the computed normalisation.

Files written by this project and by the original MLaaS4HEP are both accepted. The original
lists ``fkeys`` in the order of the file and including the event identifiers (``run``,
``event``, ...), gives ``nans`` as the normalised value of 0 (not a count), and ``events`` as
``{"total": n, "<file>": n}``; only ``fkeys``, ``jkeys``, ``jdim``, ``minv`` and ``maxv`` are used.
The features must be the same set as the files and preproc give (order does not matter;
identifiers are left out before comparing), and every feature needs a finite min and max.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigError
from .params import MAX_JDIM

REQUIRED = ("fkeys", "jkeys", "jdim", "minv", "maxv")


def load_specs_file(source: str | os.PathLike | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(name, specs)`` from a path or a mapping; the shape of each used key is checked."""
    if isinstance(source, Mapping):
        name, data = "specs", dict(source)
    else:
        name = os.fspath(source)
        try:
            with open(name, encoding="utf-8") as stream:
                data = json.load(stream)
        except FileNotFoundError:
            raise ConfigError("specs file not found", where=name) from None
        except IsADirectoryError:
            raise ConfigError("expected a specs JSON file, got a folder", where=name) from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read the specs file: {err}", where=name) from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}",
                              where=name) from None
        except RecursionError:
            raise ConfigError("not valid JSON: nested too deeply", where=name) from None
    if not isinstance(data, dict):
        raise ConfigError(f"expected a JSON object {{...}}, got {type(data).__name__}", where=name)
    for key in REQUIRED:
        if key not in data:
            raise ConfigError(f"missing key {key!r} (a specs file has fkeys, jkeys, jdim, minv, maxv)", where=name)
    for key in ("fkeys", "jkeys"):
        if not isinstance(data[key], list) or not all(isinstance(k, str) for k in data[key]):
            raise ConfigError(f"{key} must be a list of branch names, got {data[key]!r:.80}", where=f"{name}: {key}")
    for key in ("jdim", "minv", "maxv"):
        if not isinstance(data[key], dict):
            raise ConfigError(f"{key} must be an object {{branch: number}}, got {type(data[key]).__name__}",
                              where=f"{name}: {key}")
    return name, data


def normalisation(given: Mapping[str, Any], name: str, computed: Mapping[str, Any],
                  identifiers: Iterable[str]) -> dict[str, Any]:
    """The given min/max and jdim for the computed features (in the computed order)."""
    ids = set(identifiers)
    for key, kind in (("fkeys", "flat"), ("jkeys", "jagged")):
        want = set(computed[key])
        have = {k for k in given[key] if k not in ids}
        if want != have:
            missing, extra = sorted(want - have), sorted(have - want)
            parts = []
            if missing:
                parts.append(f"it lacks {_names(missing)}")
            if extra:
                parts.append(f"it has {_names(extra)}, which the files and preproc do not give as {kind} features")
            raise ConfigError(f"the given specs do not fit these inputs ({key}): " + "; ".join(parts), where=name,
                              hint="drop --specs to compute specs for these inputs")
    out: dict[str, Any] = {"fkeys": list(computed["fkeys"]), "jkeys": list(computed["jkeys"]),
                           "jdim": {}, "minv": {}, "maxv": {}}
    for feature in [*computed["fkeys"], *computed["jkeys"]]:
        for key in ("minv", "maxv"):
            out[key][feature] = _finite(given[key].get(feature), f"{name}: {key}.{feature}")
        if out["minv"][feature] > out["maxv"][feature]:
            raise ConfigError(f"minv {out['minv'][feature]} is above maxv {out['maxv'][feature]}",
                              where=f"{name}: {feature}")
    for feature in computed["jkeys"]:
        value = given["jdim"].get(feature)
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or value != int(value) or not 0 <= value <= MAX_JDIM):
            raise ConfigError(f"expected a length from 0 to {MAX_JDIM:,}, got {value!r}", where=f"{name}: jdim.{feature}")
        out["jdim"][feature] = int(value)
    return out


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"expected a finite number, got {value!r}", where=where)
    return float(value)


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
