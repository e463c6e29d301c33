"""The user's token (mlaas4hep_lab.hub.access_token): the lookup order, the cache, every error
message, and the Client's one retry on 401, against real tokens of the loopback OIDC issuer, a
real ``mlaas4hep serve`` and a loopback HTTP server answering JupyterHub's ``GET /user``."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlaas4hep.client import Client, ServerError
from mlaas4hep_lab import hub
from mlaas4hep_lab.hub import TokenError, access_token, find_token

VARIABLES = ("MLAAS4HEP_TOKEN", "MLAAS4HEP_TOKEN_FILE", "BEARER_TOKEN", "BEARER_TOKEN_FILE", "JUPYTERHUB_API_URL",
             "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER", "MLAAS4HEP_LAB_URL", "MLAAS4HEP_LAB_TOKEN")


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    """No token anywhere but where a test puts it (XDG_RUNTIME_DIR: an empty folder)."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    hub.forget()
    yield
    hub.forget()


class HubAPI(ThreadingHTTPServer):
    """JupyterHub's ``GET /hub/api/users/alice`` as a server's own token sees it: the model of the
    user, with ``auth_state`` when the hub lets the server read it (``GET /hub/api/user`` names the
    user, with an empty auth_state, as JupyterHub 6 does). Answers from ``self.answers`` in turn
    (the last one repeats) and records the Authorization headers it got."""

    daemon_threads = True

    def __init__(self):
        self.answers: list[tuple[int, object]] = []
        self.seen: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/hub/api/user":  # as JupyterHub: names the user, auth_state left empty
                    status, body = 200, {"kind": "user", "name": "alice", "auth_state": None}
                elif self.path == "/hub/api/users/alice":
                    server.seen.append(self.headers.get("Authorization", ""))
                    status, body = server.answers[0] if len(server.answers) == 1 else server.answers.pop(0)
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hub/api"

    def user(self, token: str | None, name: str = "alice", **extra) -> tuple[int, dict]:
        state = None if token is None else {"access_token": token, "refresh_token": "r", **extra}
        return 200, {"kind": "user", "name": name, "auth_state": state}


@pytest.fixture
def hub_api(monkeypatch):
    server = HubAPI()
    monkeypatch.setenv("JUPYTERHUB_API_URL", server.api)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fresh(oidc_issuer):
    """Real signed tokens of the loopback issuer: alice's, bob's, one about to expire, one expired."""
    return {"alice": oidc_issuer.token("alice"), "bob": oidc_issuer.token("bob"),
            "soon": oidc_issuer.token("alice", exp_in="30"), "expired": oidc_issuer.token("alice", exp_in="-600"),
            "foreign": oidc_issuer.token("alice", audience="someone-else")}


# -- the lookup order ----------------------------------------------------------------------------


def test_variable_then_file_then_discovery_then_hub(monkeypatch, tmp_path, hub_api, fresh):
    hub_api.answers = [hub_api.user(fresh["bob"])]
    discovered = tmp_path / "runtime" / f"bt_u{os.getuid()}"
    discovered.write_text(fresh["alice"] + "\n")
    named = tmp_path / "named"
    named.write_text(" tok-bearer-file \n")
    mine = tmp_path / "mine"
    mine.write_text("tok-mlaas4hep-file\n")
    monkeypatch.setenv("MLAAS4HEP_TOKEN", "tok-variable")
    monkeypatch.setenv("MLAAS4HEP_TOKEN_FILE", str(mine))
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(named))
    assert access_token() == "tok-variable"
    monkeypatch.delenv("MLAAS4HEP_TOKEN")
    assert access_token() == "tok-mlaas4hep-file"
    assert find_token().source == f"token file {mine}"
    monkeypatch.delenv("MLAAS4HEP_TOKEN_FILE")
    assert access_token() == "tok-bearer-file"  # stripped
    monkeypatch.delenv("BEARER_TOKEN_FILE")
    assert access_token() == fresh["alice"]  # $XDG_RUNTIME_DIR/bt_u$UID
    assert hub_api.seen == []  # a token found before the hub: the hub is not asked
    discovered.unlink()
    assert access_token() == fresh["bob"]
    assert hub_api.seen == ["token server-token"]
    assert find_token().source.startswith("JupyterHub") and "alice" in find_token().source


def test_a_file_is_read_again_on_each_call(monkeypatch, tmp_path):
    path = tmp_path / "token"
    path.write_text("one")
    monkeypatch.setenv("MLAAS4HEP_TOKEN_FILE", str(path))
    assert access_token() == "one"
    path.write_text("two")  # htgettoken / oidc-agent renewed it
    assert access_token() == "two"


@pytest.mark.parametrize("variable", ["MLAAS4HEP_TOKEN_FILE", "BEARER_TOKEN_FILE"])
def test_a_named_token_file_that_is_missing_or_empty_is_an_error(monkeypatch, tmp_path, variable):
    path = tmp_path / "nope"
    monkeypatch.setenv(variable, str(path))
    with pytest.raises(TokenError) as err:
        access_token()
    assert str(err.value) == f"{path} ({variable}): the token file does not exist (write the token there, or " \
                             f"unset {variable})"
    path.write_text("  \n")
    with pytest.raises(TokenError, match=rf"{path} \({variable}\): the token file is empty"):
        access_token()
    path.write_text("two words\n")
    with pytest.raises(TokenError, match="more than one word"):
        access_token()


def test_nothing_configured_says_what_to_set(monkeypatch):
    with pytest.raises(TokenError) as err:
        access_token()
    text = str(err.value)
    for words in ("no access token for the MLaaS4HEP service", "MLAAS4HEP_TOKEN", "MLAAS4HEP_TOKEN_FILE",
                  "BEARER_TOKEN_FILE", f"bt_u{os.getuid()}", "JUPYTERHUB_API_URL", "enable_auth_state",
                  "admin:auth_state!user", "offline_access", "auth_refresh_age", "JUPYTERHUB_CRYPT_KEY"):
        assert words in text, words


def test_an_expired_token_is_refused_with_where_it_came_from(monkeypatch, fresh):
    monkeypatch.setenv("MLAAS4HEP_TOKEN", fresh["expired"])
    with pytest.raises(TokenError) as err:
        access_token()
    assert str(err.value).startswith("MLAAS4HEP_TOKEN: the access token expired 10 min ago")
    assert "set MLAAS4HEP_TOKEN to a fresh token" in str(err.value)


# -- the hub: cache, refresh, errors -------------------------------------------------------------


def test_without_jupyterhub_user_the_hub_names_the_user(hub_api, fresh, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_USER")
    hub_api.answers = [hub_api.user(fresh["alice"])]
    assert access_token() == fresh["alice"] and hub_api.seen == ["token server-token"]


def test_the_hub_token_is_cached_until_shortly_before_exp(hub_api, fresh):
    hub_api.answers = [hub_api.user(fresh["alice"]), hub_api.user(fresh["bob"])]
    assert access_token() == fresh["alice"]
    assert access_token() == fresh["alice"]  # cached: exp is an hour away
    assert len(hub_api.seen) == 1
    assert access_token(refresh=True) == fresh["bob"]  # refresh reads the hub again
    assert len(hub_api.seen) == 2
    hub.forget()
    hub_api.answers = [hub_api.user(fresh["soon"])]  # exp within the margin: asked each time
    assert access_token() == fresh["soon"]
    assert access_token() == fresh["soon"]
    assert len(hub_api.seen) == 4


def test_an_expired_hub_token_says_how_the_hub_refreshes(hub_api, fresh):
    hub_api.answers = [hub_api.user(fresh["expired"])]
    with pytest.raises(TokenError) as err:
        access_token()
    assert "the access token expired 10 min ago" in str(err.value)
    assert "log out and in again" in str(err.value) and "auth_refresh_age" in str(err.value)


@pytest.mark.parametrize("answer, words", [
    ((200, {"kind": "user", "name": "alice"}), ["no auth_state in GET users/alice", "admin:auth_state!user",
                                                "enable_auth_state"]),
    ((200, {"kind": "user", "name": "alice", "auth_state": None}), ["keeps no auth_state for you",
                                                                     "log out and in again"]),
    ((200, {"kind": "user", "name": "alice", "auth_state": {"refresh_token": "r"}}), ["has no access_token"]),
    ((403, {"message": "Forbidden"}), ["the hub refused this server's token (HTTP 403)", "restart your server"]),
    ((500, {"message": "boom"}), ["the hub answered HTTP 500"]),
], ids=["no-scope", "no-state", "no-access-token", "refused", "hub-error"])
def test_every_hub_problem_is_a_clear_error(hub_api, answer, words):
    hub_api.answers = [answer]
    with pytest.raises(TokenError) as err:
        access_token()
    assert str(err.value).startswith(f"{hub_api.api}/users/alice: ")
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_an_unreachable_hub_is_a_clear_error(monkeypatch):
    from servers import free_port

    monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{free_port()}/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    with pytest.raises(TokenError, match="cannot reach the JupyterHub API for your token: ConnectionError"):
        access_token()


# -- the Client against a real service --------------------------------------------------------------


@pytest.fixture(scope="module")
def service(oidc_issuer, tmp_path_factory):
    from servers import ServiceProcess

    svc = ServiceProcess(oidc_issuer.url, tmp_path_factory.mktemp("hubtoken") / "data", audience="mlaas4hep",
                         required_scope="mlaas4hep", max_upload_bytes=4 << 20)
    yield svc
    svc.stop()


def test_client_sends_the_hub_token_and_retries_once_after_a_401(service, hub_api, fresh):
    # the first token is one the service refuses (another audience); the hub then has a good one
    hub_api.answers = [hub_api.user(fresh["foreign"]), hub_api.user(fresh["alice"])]
    client = Client(service.url + "/api/v1")
    assert client.token is None and client.user_token
    assert client.jobs() == []  # answered (alice has no jobs on this service yet)
    assert len(hub_api.seen) == 2  # the foreign token refused -> the hub read again (refresh=True)
    assert client.jobs() == [] and len(hub_api.seen) == 2  # the good one is cached now


def test_client_401_names_the_reason_and_where_the_token_came_from(service, monkeypatch, fresh):
    monkeypatch.setenv("MLAAS4HEP_TOKEN", fresh["foreign"])
    with pytest.raises(ServerError) as err:
        Client(service.url + "/api/v1").jobs()
    assert err.value.status == 401
    text = str(err.value)
    assert "the token is not meant for this service (aud must contain 'mlaas4hep')" in text
    assert "the service refused your token (from MLAAS4HEP_TOKEN)" in text


def test_client_without_any_token_says_what_to_configure(service):
    with pytest.raises(ServerError) as err:
        Client(service.url + "/api/v1").jobs()
    text = str(err.value)
    assert err.value.status == 401 and "no bearer token" in text
    assert "no access token for the MLaaS4HEP service" in text and "admin:auth_state!user" in text


def test_client_with_an_expired_token_says_it_expired(service, monkeypatch, fresh):
    monkeypatch.setenv("MLAAS4HEP_TOKEN", fresh["expired"])
    with pytest.raises(ServerError) as err:
        Client(service.url + "/api/v1").jobs()
    assert "MLAAS4HEP_TOKEN: the access token expired 10 min ago" in str(err.value) and err.value.status == 401


def test_an_unreachable_service_is_reported_before_any_token_problem():
    from servers import free_port

    with pytest.raises(ServerError, match="cannot reach the MLaaS4HEP server: connection refused"):
        Client(f"http://127.0.0.1:{free_port()}").jobs()


# -- the command line -------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_submits_to_a_remote_service_and_lists_the_job(service, monkeypatch, fresh, tmp_path, capsys):
    from mlaas4hep.cli import main
    from mlaas4hep.datagen import write_tth
    from support import torch_model

    write_tth(tmp_path / "sig.root", 1500, signal=True, seed=3, separation=1.5)
    write_tth(tmp_path / "bkg.root", 1500, signal=False, seed=3, separation=1.5)
    (tmp_path / "files.txt").write_text("sig.root\nbkg.root\n")  # relative to files.txt
    (tmp_path / "model.py").write_text(torch_model())
    (tmp_path / "params.json").write_text(json.dumps({"chunk_size": 1000, "epochs": 1, "batch_size": 128,
                                                      "identifier": "run,event,luminosityBlock"}))
    monkeypatch.setenv("MLAAS4HEP_TOKEN", fresh["alice"])
    monkeypatch.setenv("MLAAS4HEP_REMOTES", json.dumps({"cern": service.url}))
    code = main(["submit", "--remote", "cern", "--files", str(tmp_path / "files.txt"), "--labels", "1,0",
                 "--model", str(tmp_path / "model.py"), "--params", str(tmp_path / "params.json"), "--wait"])
    out = capsys.readouterr().out
    assert code == 0, out
    job_id = out.split()[1]
    assert f"job {job_id} (model): succeeded" in out and "auc: " in out
    # the service ran it on the uploaded copies of the local files
    job = Client(service.url + "/api/v1", token=fresh["alice"]).job(job_id)
    assert job.status == "succeeded"
    assert main(["jobs", "--remote", service.url]) == 0
    listed = capsys.readouterr().out
    assert job_id in listed and "succeeded" in listed
    monkeypatch.setenv("MLAAS4HEP_TOKEN", fresh["bob"])  # bob does not see alice's job
    assert main(["jobs", "--remote", service.url]) == 0
    assert job_id not in capsys.readouterr().out


def test_cli_mistakes_say_what_to_do(service, capsys, monkeypatch, fresh):
    from mlaas4hep.cli import main

    assert main(["jobs", "--remote", "nowhere"]) == 2
    assert "unknown remote 'nowhere'" in capsys.readouterr().err
    assert main(["jobs", "--remote", service.url]) == 2  # no token anywhere
    err = capsys.readouterr().err
    assert err.startswith("mlaas4hep: error: ") and "no access token for the MLaaS4HEP service" in err
    monkeypatch.setenv("MLAAS4HEP_TOKEN", fresh["expired"])
    assert main(["jobs", "--remote", service.url]) == 2
    assert "MLAAS4HEP_TOKEN: the access token expired" in capsys.readouterr().err


# -- the workbench's remote target ----------------------------------------------------------------


@pytest.mark.slow
def test_submit_panel_remote_target_uploads_and_its_monitor_follows_the_remote_job(service, monkeypatch, fresh,
                                                                                  tmp_path):
    """SubmitPanel (target: a remote) -> state.job_id -> TrainingMonitor on the same state, against
    the real service: the local files are uploaded, the job is alice's there, the monitor replays
    its events exactly as for a local job."""
    from mlaas4hep.datagen import write_tth
    from mlaas4hep_lab.widgets import SubmitPanel, TrainingMonitor, WorkbenchState
    from support import torch_model

    write_tth(tmp_path / "sig.root", 1500, signal=True, seed=8, separation=1.5)
    write_tth(tmp_path / "bkg.root", 1500, signal=False, seed=8, separation=1.5)
    monkeypatch.setenv("MLAAS4HEP_TOKEN", fresh["alice"])
    monkeypatch.setenv("MLAAS4HEP_REMOTES", json.dumps({"cern": service.url}))
    monkeypatch.setenv("MLAAS4HEP_JOB_ROOT", str(tmp_path / "local-jobs"))
    state = WorkbenchState()
    state.files = [str(tmp_path / "sig.root"), str(tmp_path / "bkg.root")]
    state.labels = ["1", "0"]
    state.model_source = torch_model()
    _ = state.params
    state.params = {"chunk_size": 1000, "epochs": 2, "identifier": "run,event,luminosityBlock"}
    monitor = TrainingMonitor(state=state)
    panel = SubmitPanel(state)
    try:
        panel.target.value = "cern"
        job = panel.submit()
        assert job is not None, panel.message.value
        assert state.job_id == job.id == monitor.job_id and "on cern" in panel.message.value
        assert monitor.client.api == service.url + "/api/v1"  # it follows the job there
        assert monitor.wait(240), (monitor.status, monitor.error, monitor.client_error)
        assert monitor.status == "succeeded", (monitor.error, monitor.log_lines)
        # 3000 events in chunks of 1000, 2 epochs each: one epoch event per (chunk, epoch)
        assert [(e["chunk"], e["epoch"]) for e in monitor.history] == [(c, e) for c in range(3) for e in (1, 2)]
        assert monitor.done == monitor.total == 3000 and monitor.metrics["auc"] > 0.6
        remote = Client(service.url + "/api/v1", token=fresh["alice"])
        assert remote.job(job.id).status == "succeeded"
        assert panel.client.local and job.id not in [j.id for j in panel.client.jobs()]  # not run here
    finally:
        monitor.close()
        panel.close()


def test_an_upload_too_large_says_so(service, monkeypatch, fresh, tmp_path):
    import numpy as np

    big = tmp_path / "big.root"
    big.write_bytes(np.random.default_rng(1).bytes(5 << 20))  # incompressible, over the 4 MiB limit
    monkeypatch.setenv("MLAAS4HEP_TOKEN", fresh["alice"])
    with pytest.raises(ServerError) as err:
        Client(service.url + "/api/v1").submit(files=[str(big)], labels=[1], model="def model(idim): pass")
    assert err.value.status == 413 and "the upload is larger than the service accepts" in str(err.value)


@pytest.mark.slow
def test_the_magic_lists_shows_and_cancels_remote_jobs(service, monkeypatch, fresh, tmp_path, capsys):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from mlaas4hep.datagen import write_tth
    from mlaas4hep_lab import magics
    from support import torch_model

    write_tth(tmp_path / "sig.root", 1500, signal=True, seed=9, separation=1.5)
    write_tth(tmp_path / "bkg.root", 1500, signal=False, seed=9, separation=1.5)
    (tmp_path / "model.py").write_text(torch_model())
    (tmp_path / "p.json").write_text(json.dumps({"chunk_size": 500, "epochs": 30,
                                                 "identifier": "run,event,luminosityBlock"}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLAAS4HEP_TOKEN", fresh["alice"])
    monkeypatch.setenv("MLAAS4HEP_REMOTES", json.dumps({"cern": service.url}))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "mlaas4hep_lab")
    try:
        job_id = shell.run_line_magic("mlaas4hep", "train --remote cern --files sig.root,bkg.root --labels 1,0 "
                                                   "--model model.py --params p.json")
        assert job_id, capsys.readouterr()
        shell.run_line_magic("mlaas4hep", "jobs --remote cern")
        out = capsys.readouterr().out
        assert job_id in out and "model" in out
        shell.run_line_magic("mlaas4hep", f"status {job_id} --remote cern")
        assert f"job {job_id} (model): " in capsys.readouterr().out
        shell.run_line_magic("mlaas4hep", f"cancel {job_id} --remote cern")
        out = capsys.readouterr().out
        assert f"job {job_id} (model): " in out and ("cancel" in out or "succeeded" in out)
        alice = Client(service.url + "/api/v1", token=fresh["alice"])
        info = alice.follow(job_id, timeout=120)
        assert info.status in ("cancelled", "succeeded")
        shell.run_line_magic("mlaas4hep", f"logs {job_id} --remote cern")
        text = alice.logs(job_id).text
        assert text.strip() and capsys.readouterr().out.strip() == text.strip()
        # bob's token: the same id is not his
        monkeypatch.setenv("MLAAS4HEP_TOKEN", fresh["bob"])
        magics.close_clients()
        shell.run_line_magic("mlaas4hep", f"status {job_id} --remote cern")
        err = capsys.readouterr().err
        assert err.startswith("mlaas4hep: error: ") and "404" in err
    finally:
        magics.close_clients()
        InteractiveShell.clear_instance()
