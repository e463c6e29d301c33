"""The mission's last mile, with real parts: a physicist logs into a real JupyterHub through a real
OIDC authorization-code login (the loopback issuer, in Chromium), opens a notebook on the
single-user server the hub spawned, and sends a job to a real ``mlaas4hep serve`` with
``%mlaas4hep train --remote ... --wait``, as themselves, without pasting a token anywhere: the
kernel takes the user's access token from the hub's auth_state. The job belongs to that user on
the service; another user cannot see it."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from .conftest import ARTIFACTS, run_all_cells, write_notebook
from support import need, torch_model, write_labelled_pair

pytestmark = [pytest.mark.slow, pytest.mark.ui]

PARAMS = {"chunk_size": 1000, "epochs": 2, "batch_size": 128, "identifier": "run,event,luminosityBlock"}


@pytest.fixture(scope="session")
def hub_and_service(oidc_issuer, tmp_path_factory):
    """One hub (GenericOAuthenticator at the issuer, auth_state on, the server role may read it)
    and one service accepting the same issuer's tokens (scope 'mlaas4hep' required), for the
    session; user servers know the service as the remote 'cern'."""
    from servers import JupyterHubProcess, ServiceProcess, hub_available

    need(hub_available(), "jupyterhub, oauthenticator (pip install mlaas4hep-lab[test]) and "
                          "tests/hub/node_modules (npm ci --prefix tests/hub)")
    root = tmp_path_factory.mktemp("hub")
    service = ServiceProcess(oidc_issuer.url, root / "service", audience="mlaas4hep", required_scope="mlaas4hep")
    runtime = root / "runtime"  # an empty XDG_RUNTIME_DIR: no WLCG token file is found before the hub
    runtime.mkdir()
    environment = {"MLAAS4HEP_REMOTES": json.dumps({"cern": service.url}), "XDG_RUNTIME_DIR": str(runtime),
                   "MLAAS4HEP_JOB_ROOT": str(root / "local-jobs"), "MLAAS4HEP_CACHE_DIR": str(root / "cache")}
    built = Path(__file__).parents[2] / "mlaas4hep_lab" / "labextension"
    if (built / "package.json").exists():
        # the frontend of these sources (an editable install builds it there), ahead of any
        # copy installed into the environment earlier
        (root / "jupyter" / "labextensions").mkdir(parents=True)
        (root / "jupyter" / "labextensions" / "mlaas4hep-lab").symlink_to(built)
        environment["JUPYTER_PATH"] = str(root / "jupyter")
    try:
        hub = JupyterHubProcess(oidc_issuer.url, root / "jupyterhub", environment)
    except Exception:
        service.stop()
        raise
    yield hub, service
    hub.close()
    service.stop()


def login(page, issuer: str, hub, user: str, ttl: int | None = None) -> None:
    """Log in at the IdP (access tokens living ``ttl`` seconds), then at the hub ("Sign in
    with ..."): the authorization-code flow."""
    page.goto(f"{issuer}/test/login?user={user}" + (f"&ttl={ttl}" if ttl else ""))
    assert page.locator("#who").inner_text() == f"logged in at the IdP as {user}"
    page.goto(hub.url + "/hub/login")
    page.locator("a", has_text=re.compile("Sign in with", re.IGNORECASE)).first.click()
    # the hub spawns the server, then sends the browser to it
    page.wait_for_url(re.compile(rf"/user/{user}/"), timeout=180_000)


def run_notebook(page, hub, user: str, notebook: str, until: tuple[str, ...], timeout: float) -> str:
    """Open ``notebook`` on ``user``'s server, run all its cells, and return its outputs' text once
    it shows one of ``until`` (or after ``timeout`` seconds)."""
    page.goto(hub.url + f"/user/{user}/lab/tree/{notebook}")
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    page.wait_for_selector("[data-status='idle']", timeout=120_000)
    run_all_cells(page)
    outputs = page.locator(".jp-OutputArea-output")
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = "\n".join(outputs.all_inner_texts())
        if any(marker in text for marker in until):
            break
        time.sleep(1)
    return text


def test_a_hub_user_trains_on_the_remote_service_with_their_own_token(hub_and_service, oidc_issuer, page):
    from mlaas4hep.client import Client, ServerError

    hub, service = hub_and_service
    home = hub.home("alice")
    home.mkdir(parents=True, exist_ok=True)
    write_labelled_pair(home, 2000, seed=5, separation=1.5)
    (home / "model.py").write_text(torch_model())
    (home / "params.json").write_text(json.dumps(PARAMS))
    write_notebook(home / "train.ipynb", [
        "%load_ext mlaas4hep_lab\n"
        "job = %mlaas4hep train --remote cern --files sig.root,bkg.root --labels 1,0 --model model.py "
        "--params params.json --wait\nprint('JOB', job)",
    ])

    login(page, oidc_issuer.url, hub, "alice")
    text = run_notebook(page, hub, "alice", "train.ipynb", until=("JOB ", "mlaas4hep: error"), timeout=420)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hub-remote-train.png"))
    found = re.search(r"JOB ([0-9a-f]{6,})", text)
    assert found, f"no job id in the notebook's output:\n{text}\n--- hub log:\n{hub.log.read_text()[-3000:]}"
    job_id = found.group(1)
    assert re.search(rf"job {job_id} \(.*\): succeeded", text), text

    # on the service, the job is alice's (the issuer's subject 'alice'), and it succeeded
    alice = Client(service.url + "/api/v1", token=oidc_issuer.token("alice"))
    me = alice._call("GET", "/whoami")
    assert (me["issuer"], me["subject"]) == (oidc_issuer.url, "alice")
    info = alice.job(job_id)
    assert info.status == "succeeded" and info.owner == me["id"], info
    assert job_id in [j.id for j in alice.jobs()]
    assert info.metrics.get("test_auc", 0) > 0.6, info.metrics
    # the lab's routes on alice's server list it too: the browser sends only its cookies, the
    # server adds her token from the hub's auth_state
    answer = page.request.get(hub.url + "/user/alice/mlaas4hep/lab/remotes/cern/jobs")
    assert answer.status == 200, answer.text()
    assert job_id in [j["id"] for j in answer.json()["jobs"]]
    # ... and the MLaaS4HEP sidebar shows it in the section of the remote service
    page.goto(hub.url + "/user/alice/lab")
    page.locator(".jp-SideBar [title*='MLaaS4HEP'], .jp-SideBar [data-id*='mlaas4hep']").first.click()
    row = page.locator(f".mlaas4hep-job-row[data-source='remote:cern'][data-job-id='{job_id}']")
    row.wait_for(timeout=60_000)
    assert row.get_attribute("data-status") == "succeeded"
    assert page.locator(".mlaas4hep-source[data-source='remote:cern']").count() == 1
    page.screenshot(path=str(ARTIFACTS / "hub-sidebar-remote.png"))
    # its job view (curves from the remote job's events, the log) works through the same routes
    row.locator(".mlaas4hep-job-name").click()
    page.wait_for_function("() => { const p = document.querySelector('.mlaas4hep-jobview path.mlaas4hep-series-loss');"
                           " return p && (p.getAttribute('d') || '').includes('L'); }", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "hub-jobview-remote.png"))
    # bob cannot see it
    bob = Client(service.url + "/api/v1", token=oidc_issuer.token("bob"))
    with pytest.raises(ServerError) as err:
        bob.job(job_id)
    assert err.value.status == 404
    assert job_id not in [j.id for j in bob.jobs()]


def test_an_expired_token_is_renewed_by_the_hub(hub_and_service, oidc_issuer, page):
    """carol's access tokens live 20 s: once hers has expired, reading the hub again gives a
    fresh one (the hub refreshes it at the IdP with the refresh token: auth_refresh_age), and
    the remote service takes it."""
    hub, service = hub_and_service
    home = hub.home("carol")
    home.mkdir(parents=True, exist_ok=True)
    write_notebook(home / "renew.ipynb", [
        "%load_ext mlaas4hep_lab\n"
        "import time\n"
        "from mlaas4hep_lab.hub import find_token\n"
        "first = find_token()\n"
        "time.sleep(max(0.0, first.exp - time.time()) + 12)\n"
        "second = find_token()\n"
        "print('RENEWED', second.value != first.value, second.exp > time.time(), second.source)\n"
        "%mlaas4hep jobs --remote cern\n"
        "print('DONE')",
    ])
    login(page, oidc_issuer.url, hub, "carol", ttl=20)
    text = run_notebook(page, hub, "carol", "renew.ipynb", until=("DONE", "Error"), timeout=180)
    page.screenshot(path=str(ARTIFACTS / "hub-token-renewed.png"))
    assert "RENEWED True True JupyterHub" in text, text
    assert "no jobs" in text and "mlaas4hep: error" not in text, text
