"""The service's settings: command-line flags, else ``MLAAS4HEP_SERVE_*`` environment variables,
else a config file (``--config FILE``, JSON or TOML, keys named like the flags with ``_``), else
the defaults. Every bad value is a :class:`~mlaas4hep.errors.ConfigError` naming where it came from.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError

ENV_PREFIX = "MLAAS4HEP_SERVE_"
GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``mlaas4hep serve`` needs."""

    issuer: str = ""
    audience: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "mlaas4hep-service"
    required_scope: str | None = None
    allowed_groups: tuple[str, ...] = ()
    concurrency: int = 1
    trusted_proxies: tuple[str, ...] = ()  # addresses / networks whose X-Forwarded-* headers count
    leeway: float = 30.0  # seconds of clock skew allowed on exp / nbf
    jwks_refresh_interval: float = 30.0  # the least time between two JWKS fetches for unknown kids
    max_active_jobs: int = 10  # queued + running, per user
    max_upload_bytes: int = 1 * GiB  # one request body
    max_disk_bytes: int = 10 * GiB  # a user's folders, uploads and job folders together
    max_archive_members: int = 10_000
    max_unpacked_bytes: int = 4 * GiB  # one archive, unpacked
    log_level: str = "info"
    dask: str = ""  # a Dask scheduler address (or 'local'): jobs run on its workers
    dask_resources: str = ""  # resource tags each job needs on a worker, "GPU=1,MEM=8e9"
    models_dir: str = ""  # the model registry (default DATA_DIR/models)
    no_jobs: bool = False  # serve models only: no jobs, uploads or original verbs
    batch_max_size: int = 256  # rows in one model call of the dynamic batcher
    batch_max_delay: float = 0.002  # seconds the batcher waits for more requests after the first
    max_loaded_models: int = 8  # models kept in memory (least recently used ones are unloaded)
    max_loaded_bytes: int = 4 * GiB  # their files' size together (an estimate of their memory)
    max_predict_rows: int = 100_000  # rows (or events) in one prediction request
    source: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # option -> where it came from

    def where(self, name: str) -> str:
        return self.source.get(name, f"--{name.replace('_', '-')}")


_INT = {"port", "concurrency", "max_active_jobs", "max_upload_bytes", "max_disk_bytes", "max_archive_members",
        "max_unpacked_bytes", "batch_max_size", "max_loaded_models", "max_predict_rows",
        "max_loaded_bytes"}
_FLOAT = {"leeway", "jwks_refresh_interval", "batch_max_delay"}
_BOOL = {"no_jobs"}
_LIST = {"allowed_groups", "trusted_proxies"}
_NAMES = [f.name for f in fields(ServeConfig) if f.name != "source"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` flags; none has a default here, so that unset ones fall through to the
    environment and the config file."""
    add = parser.add_argument
    add("--config", help="a JSON or TOML file with any of these settings (keys as the flags, with _)")
    add("--host", help="address to listen on (default 127.0.0.1)")
    add("--port", help="port to listen on (default 8080)")
    add("--data-dir", help="where jobs, uploads and users' folders live (default ./mlaas4hep-service)")
    add("--issuer", help="the OIDC issuer URL whose tokens are accepted (required)")
    add("--audience", help="the audience ('aud') tokens must carry (required)")
    add("--required-scope", help="a scope tokens must carry ('scope' or 'scp'), unless a group allows them")
    add("--allowed-groups", help="comma-separated groups ('groups' or 'wlcg.groups') allowed in")
    add("--concurrency", help="jobs running at once (default 1)")
    add("--trusted-proxies", help="comma-separated addresses or networks of proxies (OAuth2-Proxy) whose "
                                  "X-Forwarded-User / -Email / -Access-Token headers are believed")
    add("--leeway", help="seconds of clock skew allowed on exp and nbf (default 30)")
    add("--max-active-jobs", help="queued + running jobs per user (default 10)")
    add("--max-upload-bytes", help="largest upload (default 1 GiB)")
    add("--max-disk-bytes", help="disk per user: folders, uploads and jobs (default 10 GiB)")
    add("--max-archive-members", help="files in one archive (default 10000)")
    add("--max-unpacked-bytes", help="bytes one archive may unpack to (default 4 GiB)")
    add("--log-level", help="uvicorn's log level (default info)")
    add("--dask", help="run jobs on the workers of this Dask scheduler (tcp://host:8786, or 'local'); "
                       "the data folder must be shared with them (default: jobs run on this machine)")
    add("--dask-resources", help="resource tags a job needs on a Dask worker, e.g. GPU=1 (default none)")
    add("--models", dest="models_dir", help="the model registry's folder (default DATA_DIR/models)")
    add("--no-jobs", action="store_true", default=None, help="serve models only (no jobs, uploads or original verbs)")
    add("--batch-max-size", help="rows in one model call of the dynamic batcher (default 256; 1 = one call per "
                                 "request)")
    add("--batch-max-delay", help="seconds the batcher waits for more requests after the first (default 0.002)")
    add("--max-loaded-models", help="models kept in memory; the least recently used are unloaded (default 8)")
    add("--max-loaded-bytes", help="size of the loaded models' files together; beyond it the least recently used "
                                   "are unloaded (default 4 GiB)")
    add("--max-predict-rows", help="rows or events in one prediction request (default 100000)")


def load_config(args: argparse.Namespace | Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> ServeConfig:
    """Merge flags, environment and config file; check every value."""
    given = dict(vars(args) if isinstance(args, argparse.Namespace) else (args or {}))
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    source: dict[str, str] = {}

    config_file = given.get("config") or environ.get(ENV_PREFIX + "CONFIG")
    if config_file:
        data = _read_file(config_file)
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in _NAMES:
                raise ConfigError(f"unknown setting {key!r}", where=config_file,
                                  hint="settings: " + ", ".join(_NAMES))
            raw[name], source[name] = value, f"{config_file}: {key}"
    for name in _NAMES:
        var = ENV_PREFIX + name.upper()
        if environ.get(var) not in (None, ""):
            raw[name], source[name] = environ[var], var
    for name in _NAMES:
        if given.get(name) is not None:
            raw[name], source[name] = given[name], f"--{name.replace('_', '-')}"

    values = {name: _convert(name, value, source[name]) for name, value in raw.items()}
    config = ServeConfig(**values, source=source)
    _check(config)
    return config


def _read_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read the config file: {err.strerror or err}", where=path) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"cannot read the config file: it is not UTF-8 text ({err.reason} at byte {err.start})",
                          where=path) from None
    try:
        if path.endswith(".toml"):
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise ConfigError("TOML needs Python 3.11 or later; write the settings as JSON", where=path) from None
    except (ValueError, RecursionError) as err:
        raise ConfigError(f"not valid {'TOML' if path.endswith('.toml') else 'JSON'}: {err}", where=path) from None
    if not isinstance(data, dict):
        raise ConfigError("expected an object of settings", where=path)
    return data


def _convert(name: str, value: Any, where: str) -> Any:
    if name in _BOOL:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"expected true or false, got {value!r}", where=where)
    if name in _LIST:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"expected a comma-separated string or a list of strings, got {value!r}", where=where)
    if name in _INT:
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number < (0 if name == "port" else 1):
            raise ConfigError(f"expected a positive whole number, got {value!r}", where=where)
        return number
    if name in _FLOAT:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"expected a number of seconds, got {value!r}", where=where) from None
        if number < 0:
            raise ConfigError(f"must not be negative, got {value!r}", where=where)
        return number
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, got {value!r}", where=where)
    return value or None if name == "required_scope" else value


def _check(config: ServeConfig) -> None:
    if config.dask_resources:
        from ..jobs.dask_executor import parse_resources

        try:
            parse_resources(config.dask_resources)
        except ConfigError as err:
            raise ConfigError(err.message, where=config.where("dask_resources"), hint=err.hint) from None
    if not config.issuer:
        raise ConfigError("no token issuer given", where="--issuer",
                          hint=f"give --issuer URL, {ENV_PREFIX}ISSUER or 'issuer' in the config file")
    if not config.issuer.startswith(("https://", "http://")):
        raise ConfigError(f"the issuer must be an http(s) URL, got {config.issuer!r}", where=config.where("issuer"))
    if config.issuer.startswith("http://") and not _is_loopback_url(config.issuer):
        raise ConfigError("the issuer must use https (plain http only on loopback, for tests)",
                          where=config.where("issuer"))
    if not config.audience:
        raise ConfigError("no audience given: tokens meant for other services would be accepted",
                          where="--audience", hint=f"give --audience, {ENV_PREFIX}AUDIENCE or 'audience'")
    if config.port > 65535:
        raise ConfigError(f"port must be at most 65535, got {config.port}", where=config.where("port"))
    for entry in config.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"not an IP address or network: {entry!r}", where=config.where("trusted_proxies")) \
                from None


def _is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
