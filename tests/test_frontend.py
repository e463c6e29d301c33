"""The JupyterLab frontend: its jest suite and TypeScript build, that JupyterLab sees the
installed extension (frontend and server side), and the lab-only route behind the launcher's
"MLaaS4HEP demo" card (``POST <base_url>/mlaas4hep/lab/demo``) through a real Jupyter server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from mlaas4hep import __version__
from support import REQUIRE_ALL, need

pytest_plugins = ["pytest_jupyter.jupyter_server"]

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _jlpm() -> list[str]:
    """jlpm (yarn, shipped with JupyterLab's builder), run by this interpreter's environment."""
    found = shutil.which("jlpm", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    need(found is not None, "jlpm is not installed (pip install jupyterlab)")
    need(shutil.which("node") is not None, "node is not installed (the frontend's tests run on Node.js)")
    return [found]


@pytest.fixture(scope="module")
def node_modules() -> list[str]:
    """The frontend's npm dependencies: ``jlpm install`` in CI when they are missing."""
    jlpm = _jlpm()
    if not (REPO / "node_modules" / ".bin" / "jest").exists():
        if not REQUIRE_ALL:
            pytest.skip("node_modules/ is missing: run `jlpm install` (or `pip install -e .`, which runs it) "
                        "in the repository root to run the frontend's tests")
        done = subprocess.run([*jlpm, "install"], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return jlpm


def _run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "true", "FORCE_COLOR": "0"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def test_jest_suite_passes(node_modules):
    done = _run([*node_modules, "jest", "--ci"])
    output = ANSI.sub("", done.stdout + done.stderr)
    assert done.returncode == 0, output[-6000:]
    summary = re.search(r"Tests:\s+(.*)", output)
    assert summary and "failed" not in summary.group(1), output[-3000:]
    passed = int(re.search(r"(\d+) passed", summary.group(1)).group(1))
    assert passed >= 40, summary.group(1)  # the suites ran, not an empty match
    for suite in ("fold", "format", "chart", "notebook"):
        assert f"PASS js/__tests__/{suite}.spec.ts" in output, output[-3000:]


def test_typescript_compiles(node_modules):
    done = _run([*node_modules, "tsc", "--noEmit", "-p", "tsconfig.json"])
    assert done.returncode == 0, ANSI.sub("", done.stdout + done.stderr)[-4000:]


def test_versions_agree():
    package = json.loads((REPO / "package.json").read_text())
    assert package["name"] == "mlaas4hep-lab"
    assert package["version"] == __version__, "package.json's version must be the Python package's"
    assert package["jupyterlab"]["outputDir"] == "mlaas4hep_lab/labextension"


def _jupyter(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120)
    return ANSI.sub("", done.stdout + done.stderr)


def test_jupyterlab_lists_the_frontend_extension_enabled_and_ok():
    output = _jupyter("labextension", "list")
    line = next((ln for ln in output.splitlines() if "mlaas4hep-lab" in ln), None)
    assert line is not None, f"mlaas4hep-lab is not installed as a lab extension (pip install -e .):\n{output}"
    assert re.search(rf"mlaas4hep-lab v{re.escape(__version__)} enabled\s+OK", line), line


def test_the_installed_extension_carries_its_settings_schema():
    from jupyter_core.paths import jupyter_path

    folders = [Path(p) / "mlaas4hep-lab" for p in jupyter_path("labextensions")]
    installed = next((f for f in folders if (f / "package.json").exists()), None)
    assert installed is not None, f"no installed mlaas4hep-lab under {folders}"
    assert (installed / "static" / "style.js").exists()
    schema = json.loads((installed / "schemas" / "mlaas4hep-lab" / "plugin.json").read_text())
    interval = schema["properties"]["refreshInterval"]
    assert (interval["default"], interval["minimum"]) == (3, 1)
    install = json.loads((installed / "install.json").read_text())
    assert install["packageName"] == "mlaas4hep-lab"


def test_jupyter_server_lists_the_server_extension_enabled_and_ok():
    output = _jupyter("server", "extension", "list")
    assert re.search(r"mlaas4hep_lab\s+enabled", output), output
    assert re.search(rf"mlaas4hep_lab {re.escape(__version__)}\s+OK", output), output


# -- POST <base_url>/mlaas4hep/lab/demo ---------------------------------------------------------

DEMO = {"cells": [{"cell_type": "markdown", "id": "intro", "metadata": {}, "source": ["# a demo\n", "é ✓"]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def demo_source(tmp_path) -> Path:
    path = tmp_path / "packaged" / "demo.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(DEMO, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def jp_server_config(tmp_path, demo_source):
    return {
        "ServerApp": {"jpserver_extensions": {"mlaas4hep_lab": True}},
        "MLaaS4HEPLab": {"job_root": str(tmp_path / "job-root"), "demo_notebook": str(demo_source)},
    }


async def _demo(jp_fetch, **kwargs):
    response = await jp_fetch("mlaas4hep", "lab", "demo", method="POST", body="{}", **kwargs)
    return response.code, json.loads(response.body)


async def test_demo_is_copied_into_the_root_folder(jp_fetch, jp_root_dir, demo_source):
    code, body = await _demo(jp_fetch)
    assert (code, body) == (201, {"path": "mlaas4hep-demo/demo.ipynb", "created": True})
    copy = jp_root_dir / "mlaas4hep-demo" / "demo.ipynb"
    assert copy.read_bytes() == demo_source.read_bytes()
    # and Jupyter serves it as a notebook at that path
    model = json.loads((await jp_fetch("api", "contents", "mlaas4hep-demo", "demo.ipynb")).body)
    assert model["type"] == "notebook" and model["content"]["cells"][0]["source"] == "# a demo\né ✓"


async def test_demo_never_overwrites_the_users_copy(jp_fetch, jp_root_dir):
    await _demo(jp_fetch)
    copy = jp_root_dir / "mlaas4hep-demo" / "demo.ipynb"
    edited = copy.read_text().replace("# a demo", "# my edited demo")
    copy.write_text(edited)
    code, body = await _demo(jp_fetch)
    assert (code, body) == (200, {"path": "mlaas4hep-demo/demo.ipynb", "created": False})
    assert copy.read_text() == edited


async def test_demo_folder_already_there_is_used(jp_fetch, jp_root_dir):
    (jp_root_dir / "mlaas4hep-demo").mkdir()
    (jp_root_dir / "mlaas4hep-demo" / "data.root").write_bytes(b"x")
    code, _ = await _demo(jp_fetch)
    assert code == 201
    assert sorted(p.name for p in (jp_root_dir / "mlaas4hep-demo").iterdir()) == ["data.root", "demo.ipynb"]


async def test_demo_folder_name_taken_by_a_file_is_409(jp_fetch, jp_root_dir):
    (jp_root_dir / "mlaas4hep-demo").write_text("not a folder")
    with pytest.raises(HTTPClientError) as err:
        await _demo(jp_fetch)
    assert err.value.code == 409 and "is a file" in json.loads(err.value.response.body)["message"]
    assert (jp_root_dir / "mlaas4hep-demo").read_text() == "not a folder"


async def test_demo_needs_authentication(jp_fetch, jp_root_dir):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer not-the-secret"}):
        with pytest.raises(HTTPClientError) as err:
            await _demo(jp_fetch, headers=headers)
        assert err.value.code == 403
    assert not (jp_root_dir / "mlaas4hep-demo").exists()


async def test_demo_missing_notebook_is_404_naming_the_setting(jp_fetch, jp_serverapp, jp_root_dir, tmp_path):
    jp_serverapp.web_app.settings["mlaas4hep_demo_notebook"] = str(tmp_path / "nowhere.ipynb")
    with pytest.raises(HTTPClientError) as err:
        await _demo(jp_fetch)
    message = json.loads(err.value.response.body)["message"]
    assert err.value.code == 404 and "nowhere.ipynb" in message and "MLaaS4HEPLab.demo_notebook" in message
    assert not (jp_root_dir / "mlaas4hep-demo").exists()


def test_the_default_demo_is_the_packaged_one_or_the_repositorys():
    from mlaas4hep_lab.app import MLaaS4HEPLab
    from mlaas4hep_lab.lab_handlers import PACKAGED_DEMO, REPO_DEMO, find_demo_notebook

    default = MLaaS4HEPLab().demo_notebook
    assert default == str(PACKAGED_DEMO)
    found = find_demo_notebook(default)  # a wheel: the packaged copy; an editable install: examples/
    assert found in (PACKAGED_DEMO, REPO_DEMO)
    assert json.loads(found.read_text())["nbformat"] == 4


def test_the_lab_route_stays_out_of_the_jobs_api():
    from mlaas4hep.jobs.api import DOCUMENT
    from mlaas4hep_lab.handlers import API, ROUTES
    from mlaas4hep_lab.lab_handlers import LAB, LAB_ROUTES
    from mlaas4hep_lab.remote_handlers import REMOTE_ROUTES

    # the demo notebook, and the forwarding routes to remote services (the token stays server-side)
    assert not LAB.startswith(API) and [p for p, _ in LAB_ROUTES] == ["/demo", *(p for p, _ in REMOTE_ROUTES)]
    assert all("demo" not in path for path, _ in ROUTES)
    assert not any("demo" in path for path in json.loads(DOCUMENT.read_text())["paths"])
