"""Binder's build, replayed: a fresh virtual environment, ``pip install -r binder/requirements.txt``,
``bash binder/postBuild`` from a copy of the repository, then ``examples/demo.ipynb`` run headless
by that environment's own Jupyter, with its kernel.

Slow: pip installs TensorFlow into the new environment (a few minutes). Nothing is written into
the checkout: the repository's files (tracked, and new ones git does not ignore) are copied into
a temporary folder first, and the jobs, caches and Jupyter folders live there too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from support import need

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "examples/demo.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _tail(path: Path, lines: int = 60) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _run(cmd: list[str], log: Path, *, cwd: Path, env: dict[str, str], timeout: float) -> float:
    """Run ``cmd`` with its output into ``log``; fail the test with the log's tail if it fails."""
    start = time.monotonic()
    shown = " ".join(str(c) for c in cmd)
    with log.open("w") as out:
        try:
            proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{shown}: still running after {timeout:.0f} s; the end of {log}:\n{_tail(log)}")
    took = time.monotonic() - start
    if proc.returncode != 0:
        pytest.fail(f"{shown}: exit code {proc.returncode} after {took:.0f} s; the end of {log}:\n{_tail(log)}")
    print(f"{took:6.1f} s  {shown}")
    return took


def _copy_repository(dest: Path) -> None:
    """The files git would commit: tracked ones and new ones it does not ignore."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if not src.exists() and not src.is_symlink():  # deleted in the work tree, not yet in git
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


def _binder_env(tmp: Path, venv: Path) -> dict[str, str]:
    """This process's environment (pip's index settings, HOME for pip's cache), with the venv
    first on PATH, and Jupyter, IPython, matplotlib and MLaaS4HEP folders of their own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "JUPYTER", "MLAAS4HEP_", "CONDA", "VIRTUAL_ENV"))}
    env.update({
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_ROOT_USER_ACTION": "ignore",
        "JUPYTER_CONFIG_DIR": str(tmp / "home" / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp / "home" / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "home" / "jupyter-runtime"),
        "IPYTHONDIR": str(tmp / "home" / "ipython"),
        "MPLCONFIGDIR": str(tmp / "home" / "matplotlib"),
        "MLAAS4HEP_JOB_ROOT": str(tmp / "jobs"),
        "MLAAS4HEP_CACHE_DIR": str(tmp / "cache"),
    })
    return env


def _outputs(nb) -> tuple[str, list[dict]]:
    """All text the notebook's cells printed or returned, and its error outputs."""
    text, errors = [], []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                text.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                text.append(str(out.get("data", {}).get("text/plain", "")))
            elif out.output_type == "error":
                errors.append(out)
    return "\n".join(text), errors


def test_binder_build_runs_the_demo(tmp_path: Path) -> None:
    need(shutil.which("git") is not None and (REPO / ".git").exists(), "needs git and a git checkout")
    tmp = tmp_path
    repo, venv, logs = tmp / "repo", tmp / "venv", tmp / "logs"
    logs.mkdir()
    _copy_repository(repo)
    env = _binder_env(tmp, venv)
    (tmp / "home").mkdir()
    python = venv / "bin" / "python"
    start = time.monotonic()

    # repo2docker: an environment, binder/requirements.txt, then binder/postBuild from the repository root
    _run([sys.executable, "-m", "venv", venv], logs / "venv.log", cwd=tmp, env=env, timeout=120)
    _run([python, "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt"], logs / "requirements.log",
         cwd=repo, env=env, timeout=420)
    _run(["bash", "binder/postBuild"], logs / "postBuild.log", cwd=repo, env=env, timeout=420)

    # the notebook's kernel is this environment's Python
    _run([python, "-m", "ipykernel", "install", "--prefix", venv, "--name", "python3"], logs / "kernel.log",
         cwd=repo, env=env, timeout=60)
    listed = subprocess.run([venv / "bin" / "jupyter", "kernelspec", "list", "--json"], env=env,
                            capture_output=True, text=True, check=True).stdout
    argv = json.loads(listed)["kernelspecs"]["python3"]["spec"]["argv"]
    assert Path(argv[0]).parent == venv / "bin", f"the python3 kernel is not the venv's: {argv}"

    # headless, as `jupyter nbconvert --execute` from that environment (its nbclient and kernel)
    executed = tmp / "demo-executed.ipynb"
    _run([venv / "bin" / "jupyter", "nbconvert", "--to", "notebook", "--execute", NOTEBOOK,
          "--ExecutePreprocessor.kernel_name=python3", "--ExecutePreprocessor.timeout=300",
          "--output", executed], logs / "nbconvert.log", cwd=repo, env=env, timeout=420)
    print(f"{time.monotonic() - start:6.1f} s  in all")

    nb = nbformat.read(executed, as_version=4)
    text, errors = _outputs(nb)
    assert not errors, "error outputs:\n" + "\n".join(f"{e.ename}: {e.evalue}" for e in errors)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "not every code cell ran"
    assert "mlaas4hep: error" not in text, text

    # the cut flow, from the Explore tab
    for cut in ("all events", "nJets >= 4", "any(jetBtag > 0.8)"):
        assert re.search(rf"^{re.escape(cut)}\s+[\d,]+\s+[\d.]+%", text, re.MULTILINE), f"no cut flow row {cut!r}:\n{text}"
    # the training job and its final test metrics
    assert re.search(r"job \w+ \(demo\): succeeded", text), text
    auc = re.search(r"^auc\s+([\d.]+)$", text, re.MULTILINE)
    assert auc and float(auc.group(1)) > 0.8, f"no test auc, or a poor one:\n{text}"
    # predictions with the downloaded artifact, and the friend tree of scores
    means = dict(re.findall(r"predictions on (\w+)\s*: .* mean score ([\d.]+)", text))
    assert set(means) == {"signal", "background"}, text
    assert float(means["signal"]) > float(means["background"]) + 0.2, means
    assert "'events': 30000" in text and (repo / "examples" / "demo-data" / "signal-scores.root").exists()
    # the job ran in the new environment too (the kernel's python3 kernelspec)
    job_logs = [p.read_text(errors="replace") for p in (tmp / "jobs").glob("jobs/*/log.txt")]
    assert len(job_logs) == 1 and str(python) in job_logs[0].splitlines()[0], job_logs

    shutil.rmtree(venv, ignore_errors=True)  # about 2 GB; kept when the test fails, to look at
