"""Settings of ``mlaas4hep serve``: flags over MLAAS4HEP_SERVE_* over the config file over the
defaults, and every bad value named with where it came from."""

from __future__ import annotations

import json

import pytest

from mlaas4hep.cli import main
from mlaas4hep.errors import ConfigError
from mlaas4hep.service.config import load_config

ISSUER = "https://iam.example.org/"


def test_flags_override_the_environment_which_overrides_the_file(tmp_path):
    config_file = tmp_path / "serve.json"
    config_file.write_text(json.dumps({"issuer": ISSUER, "audience": "from-file", "port": 9000,
                                       "allowed_groups": ["/cms", "/atlas"], "max_active_jobs": 4}))
    env = {"MLAAS4HEP_SERVE_AUDIENCE": "from-env", "MLAAS4HEP_SERVE_PORT": "9100"}
    config = load_config({"config": str(config_file), "port": "9200"}, env)
    assert (config.issuer, config.audience, config.port) == (ISSUER, "from-env", 9200)
    assert config.allowed_groups == ("/cms", "/atlas") and config.max_active_jobs == 4
    assert config.concurrency == 1 and config.required_scope is None
    assert config.where("audience") == "MLAAS4HEP_SERVE_AUDIENCE"
    assert config.where("max_active_jobs") == f"{config_file}: max_active_jobs"


def test_the_environment_alone_is_enough(tmp_path):
    env = {"MLAAS4HEP_SERVE_ISSUER": ISSUER, "MLAAS4HEP_SERVE_AUDIENCE": "mlaas", "MLAAS4HEP_SERVE_CONFIG": "",
           "MLAAS4HEP_SERVE_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1", "MLAAS4HEP_SERVE_REQUIRED_SCOPE": "mlaas"}
    config = load_config({}, env)
    assert config.trusted_proxies == ("10.0.0.0/8", "127.0.0.1") and config.required_scope == "mlaas"


def test_toml_files_are_read(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text(f'issuer = "{ISSUER}"\naudience = "mlaas"\nmax-upload-bytes = 1000\n')
    assert load_config({"config": str(path)}, {}).max_upload_bytes == 1000


@pytest.mark.parametrize("given, env, words", [
    ({}, {}, "--issuer: no token issuer given"),
    ({"issuer": ISSUER}, {}, "--audience: no audience given"),
    ({"issuer": "http://iam.example.org", "audience": "a"}, {}, "must use https"),
    ({"issuer": "iam.example.org", "audience": "a"}, {}, "must be an http(s) URL"),
    ({"issuer": ISSUER, "audience": "a"}, {"MLAAS4HEP_SERVE_PORT": "eighty"},
     "MLAAS4HEP_SERVE_PORT: expected a positive"),
    ({"issuer": ISSUER, "audience": "a", "concurrency": "0"}, {}, "--concurrency: expected a positive whole number"),
    ({"issuer": ISSUER, "audience": "a", "trusted_proxies": "proxy.cern.ch"}, {}, "not an IP address or network"),
    ({"issuer": ISSUER, "audience": "a", "leeway": "-1"}, {}, "--leeway: must not be negative"),
])
def test_bad_settings_are_named(given, env, words):
    with pytest.raises(ConfigError) as err:
        load_config(given, env)
    assert words in str(err.value)


def test_bad_config_files_are_named(tmp_path):
    path = tmp_path / "serve.json"
    path.write_text('{"issuer": "https://x", "audiance": "a"}')
    with pytest.raises(ConfigError, match="serve.json: unknown setting 'audiance'"):
        load_config({"config": str(path)}, {})
    path.write_text("{nope")
    with pytest.raises(ConfigError, match="serve.json: not valid JSON"):
        load_config({"config": str(path)}, {})
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config({"config": str(tmp_path / "missing.json")}, {})


def test_the_command_line_reports_a_missing_issuer_without_a_traceback(capsys, monkeypatch):
    for name in ("ISSUER", "AUDIENCE", "CONFIG"):
        monkeypatch.delenv(f"MLAAS4HEP_SERVE_{name}", raising=False)
    assert main(["serve", "--audience", "mlaas"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlaas4hep: error: --issuer: no token issuer given") and "Traceback" not in err


def test_the_engine_and_the_command_line_do_not_import_fastapi():
    import subprocess
    import sys

    code = ("import sys, mlaas4hep, mlaas4hep.cli, mlaas4hep.jobs, mlaas4hep.service; mlaas4hep.cli.build_parser(); "
            "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'jwt') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_the_access_log_is_off_unless_asked_for(monkeypatch):
    """A log line per request costs CPU time on the prediction routes: uvicorn's access log is off
    by default, on with --access-log or MLAAS4HEP_SERVE_ACCESS_LOG; errors are logged either way."""
    import uvicorn

    runs = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append(options))
    monkeypatch.delenv("MLAAS4HEP_SERVE_ACCESS_LOG", raising=False)
    base = ["serve", "--issuer", ISSUER, "--audience", "mlaas", "--no-jobs"]
    assert main(base) == 0
    monkeypatch.setenv("MLAAS4HEP_SERVE_ACCESS_LOG", "1")
    assert main(base) == 0
    monkeypatch.delenv("MLAAS4HEP_SERVE_ACCESS_LOG")
    assert main(base + ["--access-log"]) == 0
    assert [r["access_log"] for r in runs] == [False, True, True]
    assert {r["log_level"] for r in runs} == {"info"}
