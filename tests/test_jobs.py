"""The JobManager: real jobs in their own processes, the queue and its limit, cancel, restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlaas4hep import ConfigError
from mlaas4hep.jobs import JobManager, JobNotFound, JobStateError, WorkflowRequest
from mlaas4hep.jobs import process
from support import cancel_and_check, keras_model, torch_model, write_labelled_pair

TORCH_MODEL = torch_model()

KERAS_MODEL = keras_model()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jobdata")
    sig, bkg = write_labelled_pair(folder, 3000, seed=2, separation=1.5)
    tiny_sig, tiny_bkg = write_labelled_pair(folder, 300, seed=3, names=("tiny_sig.root", "tiny_bkg.root"))
    return {"folder": folder, "files": [str(sig), str(bkg)], "tiny": [str(tiny_sig), str(tiny_bkg)]}


def request(data, model=TORCH_MODEL, tiny=False, **params):
    base = {"chunk_size": 1000, "epochs": 2, "batch_size": 128, "identifier": "run,event,luminosityBlock"}
    return WorkflowRequest(files=data["tiny" if tiny else "files"], labels=["1", "0"], model=model,
                           params={**base, **params})


def slow_request(data):
    """A job that runs long enough to be caught running: many small chunks, many epochs."""
    return request(data, chunk_size=200, epochs=40)


def test_a_job_runs_in_its_own_process_and_leaves_an_artifact(data, tmp_path):
    with JobManager(tmp_path, base_dir=data["folder"]) as manager:
        job = manager.submit(request(data, model=KERAS_MODEL))
        assert job.status == "queued" and job.owner == manager.owner
        done = manager.wait(job.id, timeout=180)
        assert done.status == "succeeded", (done.error, manager.logs(job.id).text[-2000:])
        assert done.metrics["test_auc"] > 0.8 and "loss" in done.metrics
        assert done.progress.events_processed == done.progress.events_total > 0
        assert done.artifact
        folder = manager.root / "jobs" / job.id
        for name in ("request.json", "inputs/model.py", "inputs/params.json", "events.jsonl", "log.txt",
                     "specs.json", "status.json", "artifact/mlaas4hep.json"):
            assert (folder / name).exists(), name
        events = manager.events(job.id).events
        assert any(e["event"] == "epoch" and e["loss"] > 0 for e in events)
        since = events[3]["seq"]
        assert [e["seq"] for e in manager.events(job.id, since).events] == [e["seq"] for e in events[4:]]
        log = manager.logs(job.id)
        assert f"mlaas4hep job {job.id}" in log.text and log.offset == log.size
        assert manager.logs(job.id, log.offset).text == ""
        archive = manager.artifact_archive(job.id)
        import tarfile

        with tarfile.open(archive) as tar:
            assert "artifact/mlaas4hep.json" in tar.getnames()
        with pytest.raises(JobStateError):
            manager.cancel(job.id)
        manager.delete(job.id)
        assert not folder.exists()
        with pytest.raises(JobNotFound):
            manager.get(job.id)


def test_requests_are_checked_before_anything_is_queued(data, tmp_path):
    with JobManager(tmp_path, base_dir=data["folder"], start=False) as manager:
        with pytest.raises(ConfigError, match="params: unknown key 'chunk_sise'"):
            manager.submit(request(data, chunk_sise=5))
        with pytest.raises(ConfigError, match=r"files: nope.root: file not found on the server"):
            manager.submit(WorkflowRequest(files=["nope.root"], labels=["1"], model=TORCH_MODEL))
        with pytest.raises(ConfigError, match=r"model.py:2: syntax error"):
            manager.submit(request(data, model="import torch\ndef model(idim)\n"))
        with pytest.raises(ConfigError, match="unknown kernel 'nokernel'"):
            manager.submit(request(data).model_copy(update={"kernel": "nokernel"}))
        with pytest.raises(ConfigError, match="flat_cut.nJets.cut: syntax error"):
            manager.submit(request(data).model_copy(update={"preproc": {"flat_cut": {"nJets": {"cut": "nJets >"}}}}))
        with pytest.raises(ValueError, match="3 labels for 2 files"):
            WorkflowRequest(files=data["files"], labels=["1", "0", "1"], model=TORCH_MODEL)
        assert manager.list() == []


def test_cancel_leaves_no_process_of_the_job(data, tmp_path):
    with JobManager(tmp_path, base_dir=data["folder"]) as manager:
        job = manager.submit(slow_request(data))
        deadline = time.monotonic() + 60
        while not any(e["event"] == "epoch" for e in manager.events(job.id).events):
            assert time.monotonic() < deadline and manager.get(job.id).status in ("queued", "running")
            time.sleep(0.1)
        cancel_and_check(manager, job.id, manager.store.get(job.id)["pid"], logged="chunk 0 epoch 1: loss ")
        queued = manager.submit(slow_request(data))
        other = manager.submit(slow_request(data))
        assert manager.cancel(other.id).status == "cancelled"  # cancelled while queued (or just started)
        manager.cancel(queued.id)


def test_a_restarted_manager_reattaches_and_marks_lost_jobs_failed(data, tmp_path):
    first = JobManager(tmp_path, base_dir=data["folder"], concurrency=2)
    running = first.submit(slow_request(data))
    doomed = first.submit(slow_request(data))
    deadline = time.monotonic() + 60
    while not all(first.store.get(j.id)["pid"] for j in (running, doomed)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.close()  # the server stops; its jobs go on

    from mlaas4hep.jobs.store import JobStore

    pid = JobStore(tmp_path / "jobs.sqlite").get(doomed.id)["pid"]
    os.killpg(pid, signal.SIGKILL)  # a job dies while nobody watches
    time.sleep(0.5)

    second = JobManager(tmp_path, base_dir=data["folder"], concurrency=2)
    try:
        lost = second.get(doomed.id)
        assert lost.status == "failed" and "ended without a result" in lost.error
        alive = second.get(running.id)
        assert alive.status == "running"
        before = alive.progress.events_processed
        deadline = time.monotonic() + 60
        while second.get(running.id).progress.events_processed == before:  # still watched: progress moves
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert second.cancel(running.id).status == "cancelled"
    finally:
        second.close()


def _submit_from_process(root: str, files: list[str], n: int) -> None:
    code = (
        "import sys, json\n"
        "from mlaas4hep.jobs import JobManager, WorkflowRequest\n"
        f"m = JobManager({root!r}, start=False)\n"
        f"for _ in range({n}):\n"
        f"    m.submit(WorkflowRequest(files={files!r}, labels=['1','0'], model={TORCH_MODEL!r},\n"
        "             params={'chunk_size': 1000, 'epochs': 1}))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_fifty_concurrent_submissions_lose_nothing_and_respect_the_limit(data, tmp_path):
    manager = JobManager(tmp_path, base_dir=data["folder"], concurrency=3)
    try:
        threads = [threading.Thread(target=lambda: [manager.submit(request(data, tiny=True, epochs=1))
                                                    for _ in range(5)]) for _ in range(6)]
        procs = [threading.Thread(target=_submit_from_process, args=(str(tmp_path), data["tiny"], 5)) for _ in range(4)]
        for t in threads + procs:
            t.start()
        for t in threads + procs:
            t.join()
        jobs = manager.list()
        assert len(jobs) == 50 and len({j.id for j in jobs}) == 50
        deadline = time.monotonic() + 600
        max_running = 0
        while True:
            statuses = [j.status for j in manager.list()]
            max_running = max(max_running, statuses.count("running"))
            assert max_running <= 3
            if all(s in ("succeeded", "failed", "cancelled") for s in statuses):
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.05)
        jobs = manager.list()
        assert [j.status for j in jobs].count("succeeded") == 50, [j.error for j in jobs if j.error][:3]
        # the limit held over the whole run, not only when we looked
        spans = sorted((j.started, j.finished) for j in jobs)
        for start, _ in spans:
            assert sum(1 for s, f in spans if s <= start < f) <= 3
        # and jobs did run side by side, as recorded by their start and end times (not by polling)
        assert max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans) >= 2
    finally:
        manager.close()


@pytest.mark.slow
def test_jobs_run_with_the_python_of_the_named_kernel(data, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # another environment that has the project: it sees this one's packages (--system-site-packages
    # would give the system's, not those of the .venv the tests run in)
    import site
    import sysconfig

    inherit = "".join(f"import site; site.addsitedir({p!r})\n" for p in site.getsitepackages())
    target = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert target != sysconfig.get_path("purelib")
    (Path(target) / "inherit.pth").write_text(inherit)
    spec = tmp_path / "jupyter" / "kernels" / "ml-env"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ML env", "language": "python"}))
    os.environ["JUPYTER_PATH"] = str(tmp_path / "jupyter")
    try:
        with JobManager(tmp_path / "jobs", base_dir=data["folder"]) as manager:
            kernels = manager.kernels()
            assert kernels["ml-env"].python == str(venv / "bin" / "python")
            job = manager.submit(request(data, tiny=True, epochs=1).model_copy(update={"kernel": "ml-env"}))
            done = manager.wait(job.id, timeout=180)
            assert done.status == "succeeded", done.error
            assert done.kernel == "ml-env"
            assert f"python {venv / 'bin' / 'python'}," in manager.logs(job.id).text
    finally:
        del os.environ["JUPYTER_PATH"]


def test_a_job_whose_python_lacks_mlaas4hep_fails_with_the_reason(data, tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    from mlaas4hep.jobs.models import KernelInfo

    def kernels():
        return {"python3": KernelInfo(name="python3", display_name="server", python=sys.executable),
                "bare": KernelInfo(name="bare", display_name="bare", python=str(venv / "bin" / "python"))}

    with JobManager(tmp_path / "jobs", base_dir=data["folder"], kernels=kernels) as manager:
        job = manager.submit(request(data, tiny=True).model_copy(update={"kernel": "bare"}))
        done = manager.wait(job.id, timeout=60)
        assert done.status == "failed"
        assert "No module named 'mlaas4hep'" in done.error


def test_the_request_takes_labels_as_numbers_or_names_and_refuses_absurd_shapes():
    base = {"files": ["a.root", "b.root"], "model": "def model(idim): pass"}
    assert WorkflowRequest(**base, labels=[1, 0]).labels == ["1", "0"]
    assert WorkflowRequest(**base, labels=["signal", 0]).labels == ["signal", "0"]
    for labels, message in (([True, 0], "valid string"), ([1.5, 0], "valid string"),
                            (["5" * 5000, "0"], "label 0 must be an integer or a name of 1 to 200 characters")):
        with pytest.raises(ValueError, match=message):
            WorkflowRequest(**base, labels=labels)
    nested: dict = {"x": 1}
    for _ in range(40):
        nested = {"a": nested}
    with pytest.raises(ValueError, match="nested more than 32 levels deep"):
        WorkflowRequest(**base, preproc=nested)
    with pytest.raises(ValueError, match="at most 4096 characters"):
        WorkflowRequest(**{**base, "files": ["a" * 100_000]})


def test_model_path_devices_and_fifos_are_refused_at_once(data, tmp_path):
    """Even where the admin allows a folder holding them, a device or FIFO is never read."""
    fifo = tmp_path / "models" / "pipe.py"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with JobManager(tmp_path / "root", base_dir=data["folder"], model_dirs=[tmp_path / "models", "/dev"],
                    start=False) as manager:
        for path, message in ((str(fifo), "got a FIFO"), ("/dev/zero", "got a device"),
                              ("/dev/null", "got a device")):
            started = time.monotonic()
            with pytest.raises(ConfigError, match=message):
                manager.submit(WorkflowRequest(files=data["files"], labels=["1", "0"], model_path=path))
            assert time.monotonic() - started < 5, path
        outside = tmp_path / "elsewhere.py"
        outside.write_text(TORCH_MODEL)
        with pytest.raises(ConfigError, match="the server reads model files only from its own folders"):
            manager.submit(WorkflowRequest(files=data["files"], labels=["1", "0"], model_path=str(outside)))
        assert manager.list() == []
    # a manager without model_dirs serves its own user alone (in-process): any regular file will do
    with JobManager(tmp_path / "own", base_dir=data["folder"], start=False) as manager:
        job = manager.submit(WorkflowRequest(files=data["files"], labels=["1", "0"], model_path=str(outside)))
        assert (manager.root / "jobs" / job.id / "inputs" / "model.py").read_text() == TORCH_MODEL
        with pytest.raises(ConfigError, match="got a FIFO"):
            manager.submit(WorkflowRequest(files=data["files"], labels=["1", "0"], model_path=str(fifo)))


# a model.py that starts a process of its own (as a data loader or a shell-out would), then trains
SPAWNING_MODEL = """import subprocess
from pathlib import Path

child = subprocess.Popen(["sleep", "300"])
Path("child.pid").write_text(str(child.pid))
""" + TORCH_MODEL


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def _child_pid(manager, job_id: str) -> int:
    path = manager.root / "jobs" / job_id / "child.pid"
    return int(_wait_for(lambda: path.exists() and path.read_text(), 60, "the model started no child"))


def test_a_killed_runner_takes_its_children_along_and_the_failure_says_how(data, tmp_path):
    with JobManager(tmp_path, base_dir=data["folder"], concurrency=2) as manager:
        watched = manager.submit(slow_request(data).model_copy(update={"model": SPAWNING_MODEL}))
        unwatched = manager.submit(slow_request(data).model_copy(update={"model": SPAWNING_MODEL}))
        children = {job.id: _child_pid(manager, job.id) for job in (watched, unwatched)}
        runners = {job.id: manager.store.get(job.id)["pid"] for job in (watched, unwatched)}

        # the runner alone is killed (as the OOM killer does); its child would live on, adopted by PID 1
        os.kill(runners[watched.id], signal.SIGKILL)
        failed = _wait_for(lambda: (j := manager.get(watched.id)).status != "running" and j, 30, "not marked")
        assert failed.status == "failed"
        assert failed.error == "the job process was killed by SIGKILL — out of memory?"
        assert not process.alive(children[watched.id], None)
        assert process.group_members(runners[watched.id]) == []
        assert "mlaas4hep: job lost: the job process was killed by SIGKILL" in manager.logs(watched.id).text
    # the same while no manager watches: the next one finds the job lost and stops what is left
    os.kill(runners[unwatched.id], signal.SIGKILL)
    time.sleep(0.5)
    assert process.alive(children[unwatched.id], None)  # the orphan runs on, for now
    with JobManager(tmp_path, base_dir=data["folder"], concurrency=2) as manager:
        lost = manager.get(unwatched.id)
        assert lost.status == "failed" and "ended without a result (killed, or out of memory?)" in lost.error
        assert not process.alive(children[unwatched.id], None)
        assert process.group_members(runners[unwatched.id]) == []


def test_a_job_whose_manager_died_before_recording_it_is_still_followed(data, tmp_path):
    """The manager stops right after starting the process, before writing its pid: the runner
    recorded itself, so the next manager follows the job to its end."""
    from mlaas4hep.jobs.store import JobStore

    with JobManager(tmp_path, base_dir=data["folder"], start=False) as manager:
        job = manager.submit(request(data, tiny=True, epochs=1))
    store = JobStore(tmp_path / "jobs.sqlite")
    row = store.claim_next(1)  # what the crashed manager did: claimed, launched ...
    folder = tmp_path / "jobs" / job.id
    child = process.launch([row["python"], "-m", "mlaas4hep.jobs.runner", str(folder)], folder, folder / "log.txt",
                           process.job_environment(os.environ))
    store.close()  # ... and died before recording the pid
    assert row["id"] == job.id
    try:
        with JobManager(tmp_path, base_dir=data["folder"]) as manager:
            done = manager.wait(job.id, timeout=120)
            assert done.status == "succeeded", (done.error, manager.logs(job.id).text[-2000:])
            assert manager.store.get(job.id)["pid"] == child.pid
            assert done.progress.events_processed > 0
    finally:
        child.wait(10)


def test_jobs_get_no_server_secrets_and_keep_their_files_private(data, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_TOKEN", "server-secret")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-secret")
    monkeypatch.setenv("BEARER_TOKEN", "the-users-data-token")  # for root:// reads: the job needs it
    model = "import json, os\njson.dump(dict(os.environ), open('env.json', 'w'))\n" + KERAS_MODEL
    root = tmp_path / "fresh" / "root"
    with JobManager(root, base_dir=data["folder"]) as manager:
        job = manager.submit(request(data, model=model, tiny=True, epochs=1))
        done = manager.wait(job.id, timeout=180)
        assert done.status == "succeeded", (done.error, manager.logs(job.id).text[-2000:])
        manager.artifact_archive(job.id)
        folder = root / "jobs" / job.id
        env = json.loads((folder / "env.json").read_text())
        assert "JUPYTER_TOKEN" not in env and "JUPYTERHUB_API_TOKEN" not in env
        assert env["BEARER_TOKEN"] == "the-users-data-token"

        log = manager.logs(job.id).text
        assert "chunk 0 epoch 1: " in log and " loss " in log and " events/s" in log and "finished in" in log
        assert "absl::InitializeLog" not in log and "oneDNN" not in log  # TensorFlow's start-up noise

    def mode(path):
        return os.stat(path).st_mode & 0o777

    assert mode(root) == 0o700 and mode(root / "jobs") == 0o700
    for name in ("jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm"):
        if (root / name).exists():
            assert mode(root / name) == 0o600, name
    paths = list(folder.rglob("*"))
    assert folder / "artifact.tar.gz" in paths and folder / "artifact" / "mlaas4hep.json" in paths
    for path in [folder, *paths]:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), (path, oct(mode(path)))
