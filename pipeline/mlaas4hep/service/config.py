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


def _setting(default: Any, help: str | None = None, flag: str | None = None) -> Any:
    """A :class:`ServeConfig` field and its ``serve`` flag: ``--NAME`` (or ``flag``) with ``help``;
    a setting without ``help`` has no flag (environment and config file only)."""
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``mlaas4hep serve`` needs; the fields' order is the order of ``serve --help``."""

    host: str = _setting("127.0.0.1", "address to listen on (default 127.0.0.1)")
    port: int = _setting(8080, "port to listen on (default 8080)")
    data_dir: str = _setting("mlaas4hep-service",
                             "where jobs, uploads and users' folders live (default ./mlaas4hep-service)")
    issuer: str = _setting("", "the OIDC issuer URL whose tokens are accepted (required)")
    audience: str = _setting("", "the audience ('aud') tokens must carry (required)")
    required_scope: str | None = _setting(None, "a scope tokens must carry ('scope' or 'scp'), unless a group "
                                                "allows them")
    allowed_groups: tuple[str, ...] = _setting((), "comma-separated groups ('groups' or 'wlcg.groups') allowed in")
    concurrency: int = _setting(1, "jobs running at once (default 1)")
    trusted_proxies: tuple[str, ...] = _setting((), "comma-separated addresses or networks of proxies (OAuth2-Proxy) "
                                                    "whose X-Forwarded-User / -Email / -Access-Token headers are "
                                                    "believed")
    leeway: float = _setting(30.0, "seconds of clock skew allowed on exp and nbf (default 30)")
    jwks_refresh_interval: float = _setting(30.0)  # the least time between two JWKS fetches for unknown kids
    max_active_jobs: int = _setting(10, "queued + running jobs per user (default 10)")
    max_upload_bytes: int = _setting(1 * GiB, "largest upload (default 1 GiB)")  # one request body
    max_disk_bytes: int = _setting(10 * GiB, "disk per user: folders, uploads and jobs (default 10 GiB)")
    max_archive_members: int = _setting(10_000, "files in one archive (default 10000)")
    max_unpacked_bytes: int = _setting(4 * GiB, "bytes one archive may unpack to (default 4 GiB)")
    log_level: str = _setting("info", "uvicorn's log level (default info)")
    access_log: bool = _setting(False, "log a line per request at INFO (uvicorn's access log; default off: on the "
                                       "prediction routes it costs CPU time per request; errors are logged "
                                       "either way)")
    dask: str = _setting("", "run jobs on the workers of this Dask scheduler (tcp://host:8786, or 'local'); "
                             "the data folder must be shared with them (default: jobs run on this machine)")
    dask_resources: str = _setting("", "resource tags a job needs on a Dask worker, e.g. GPU=1 (default none)")
    models_dir: str = _setting("", "the model registry's folder (default DATA_DIR/models)", flag="--models")
    no_jobs: bool = _setting(False, "serve models only (no jobs, uploads or original verbs)")
    batch_max_size: int = _setting(256, "rows in one model call of the dynamic batcher (default 256; 1 = one call "
                                        "per request)")
    batch_max_delay: float = _setting(0.002, "seconds the batcher waits for more requests after the first "
                                             "(default 0.002)")
    max_loaded_models: int = _setting(8, "models kept in memory; the least recently used are unloaded (default 8)")
    # the loaded models' files' size together: an estimate of their memory
    max_loaded_bytes: int = _setting(4 * GiB, "size of the loaded models' files together; beyond it the least "
                                              "recently used are unloaded (default 4 GiB)")
    max_predict_rows: int = _setting(100_000, "rows or events in one prediction request (default 100000)")
    model_threads: int = _setting(1, "CPU threads of a served PyTorch model's calls (default 1: the batcher gives "
                                     "it large calls, HTTP work needs the other cores)")
    source: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # option -> where it came from

    def where(self, name: str) -> str:
        return self.source.get(name, f"--{name.replace('_', '-')}")


_INT = {"port", "concurrency", "max_active_jobs", "max_upload_bytes", "max_disk_bytes", "max_archive_members",
        "max_unpacked_bytes", "batch_max_size", "max_loaded_models", "max_predict_rows",
        "max_loaded_bytes", "model_threads"}
_FLOAT = {"leeway", "jwks_refresh_interval", "batch_max_delay"}
_BOOL = {"no_jobs", "access_log"}
_LIST = {"allowed_groups", "trusted_proxies"}
_NAMES = [f.name for f in fields(ServeConfig) if f.name != "source"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` flags, one per :class:`ServeConfig` setting that has a help text; none has a
    default here, so that unset ones fall through to the environment and the config file."""
    parser.add_argument("--config", help="a JSON or TOML file with any of these settings (keys as the flags, with _)")
    for setting in fields(ServeConfig):
        help = setting.metadata.get("help")
        if help is None:
            continue
        flag = setting.metadata["flag"] or f"--{setting.name.replace('_', '-')}"
        if setting.name in _BOOL:
            parser.add_argument(flag, dest=setting.name, action="store_true", default=None, help=help)
        else:
            parser.add_argument(flag, dest=setting.name, help=help)


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
