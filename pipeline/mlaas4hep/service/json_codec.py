"""JSON of request and response bodies: orjson when it is installed (several times faster on the
prediction routes' number lists), else the standard library. Bodies orjson refuses but Python's
``json`` reads (NaN / Infinity literals, integers beyond 64 bits, lone surrogates) are read by
``json``, so the accepted input is the same either way."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is in the service extra
    orjson = None


def loads(data: bytes | bytearray) -> Any:
    """The value of a JSON document; ``ValueError`` (or ``RecursionError``) when it is not one."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # read (or refused, with json's message) below
    return json.loads(data)


def dumps(value: Any) -> bytes:
    """``value`` (dicts, lists, str, int, finite floats, None) as compact JSON bytes."""
    if orjson is not None:
        return orjson.dumps(value)
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
