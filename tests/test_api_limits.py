"""The jobs API against a hostile or careless client (a real Jupyter server, pytest-jupyter):
files it will not read, bodies it will not take, query values it refuses, and clients that go
away. Every refusal is a 4xx with a message, and none of them blocks the server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import pytest
from tornado.httpclient import HTTPClientError

from mlaas4hep.datagen import write_tth
from support import torch_model

pytest_plugins = ["pytest_jupyter.jupyter_server"]

MODEL = torch_model()
SLOW = torch_model(8)
BODY_LIMIT = 64 * 1024
MODEL_LIMIT = 4096


@pytest.fixture
def extra_models(tmp_path):
    folder = tmp_path / "shared-models"
    folder.mkdir()
    (folder / "model.py").write_text(MODEL)
    return folder


@pytest.fixture
def jp_server_config(tmp_path, extra_models):
    return {
        "ServerApp": {"jpserver_extensions": {"mlaas4hep_lab": True}},
        "MLaaS4HEPLab": {"job_root": str(tmp_path / "job-root"), "concurrency": 1, "max_body_size": BODY_LIMIT,
                         "max_model_size": MODEL_LIMIT, "model_dirs": [str(extra_models)]},
    }


@pytest.fixture
def files(tmp_path):
    sig = write_tth(tmp_path / "sig.root", 1000, signal=True, seed=5)
    bkg = write_tth(tmp_path / "bkg.root", 1000, signal=False, seed=5)
    return [str(sig), str(bkg)]


def body(files, **fields):
    return {"files": files, "labels": ["1", "0"], "model": MODEL, "params": {"chunk_size": 500, "epochs": 1},
            **fields}


async def post_jobs(jp_fetch, payload, raw: bytes | None = None, **kwargs):
    data = raw if raw is not None else json.dumps(payload)
    return await jp_fetch("mlaas4hep", "api", "v1", "jobs", method="POST", body=data, request_timeout=20, **kwargs)


async def refused(jp_fetch, payload=None, raw=None, code=400) -> str:
    with pytest.raises(HTTPClientError) as err:
        await post_jobs(jp_fetch, payload, raw)
    assert err.value.code == code, err.value.response.body if err.value.response else err.value
    return json.loads(err.value.response.body)["message"]


async def test_model_path_must_be_a_small_text_file_in_the_servers_folders(jp_fetch, jp_root_dir, files,
                                                                          extra_models):
    root = jp_root_dir
    os.mkfifo(root / "pipe.py")
    (root / "folder.py").mkdir()
    (root / "binary.py").write_bytes(bytes(range(256)) * 4)
    (root / "latin1.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    (root / "big.py").write_text("x = 1\n" * 1000)
    os.symlink("/etc/hostname", root / "link.py")
    cases = [
        ("/dev/zero", "the server reads model files only from its own folders"),
        ("pipe.py", "expected a model.py file, got a FIFO"),
        ("folder.py", "expected a model.py file, got a folder"),
        ("binary.py", "expected Python source, got a binary file"),
        ("latin1.py", "expected Python source in UTF-8, got byte 0xe9"),
        ("big.py", f"the file has 6000 bytes; the server reads model files up to {MODEL_LIMIT} bytes"),
        ("../../../../../../../../etc/hostname", "the server reads model files only from its own folders"),
        ("link.py", "the server reads model files only from its own folders"),
        ("/etc/hostname", "the server reads model files only from its own folders"),
        ("nope.py", "file not found on the server"),
        ("a" * 5000, "String should have at most 4096 characters"),
    ]
    for path, message in cases:
        started = time.monotonic()
        text = await refused(jp_fetch, body(files, model=None, model_path=path))
        assert message in text, (path, text)
        assert time.monotonic() - started < 10, path  # said at once: nothing was read from a device or FIFO

    # four FIFOs at once, as the attack did: they are refused, and the API keeps answering
    for i in range(4):
        os.mkfifo(root / f"pipe{i}.py")
    answers = await asyncio.wait_for(asyncio.gather(
        *(refused(jp_fetch, body(files, model=None, model_path=f"pipe{i}.py")) for i in range(4)),
        jp_fetch("mlaas4hep", "api", "v1", "jobs", request_timeout=10)), timeout=30)
    assert all("FIFO" in a for a in answers[:4]) and answers[4].code == 200

    # a file in the root, and one in a folder the admin allows, are fine
    (root / "model.py").write_text(MODEL)
    for path in ("model.py", str(extra_models / "model.py")):
        response = await post_jobs(jp_fetch, body(files, model=None, model_path=path))
        assert response.code == 201
        job = json.loads(response.body)
        await jp_fetch("mlaas4hep", "api", "v1", "jobs", job["id"], "cancel", method="POST", body="{}")


async def test_a_body_over_the_limit_is_413(jp_fetch, jp_serverapp, files):
    big = body(files, name="x", model=MODEL + "#" * (2 * BODY_LIMIT))
    message = await refused(jp_fetch, big, code=413)
    assert f"this server takes at most {BODY_LIMIT}" in message
    # just under the limit is fine (and checked as usual)
    small = body(files, model=MODEL + "#" * (BODY_LIMIT // 2))
    response = await post_jobs(jp_fetch, small)
    assert response.code == 201
    job = json.loads(response.body)
    await jp_fetch("mlaas4hep", "api", "v1", "jobs", job["id"], "cancel", method="POST", body="{}")

    # a client announcing 200 MB gets its 413 after sending far less: the body is never read in full
    def announce_a_huge_body() -> bytes:
        with socket.create_connection(("127.0.0.1", jp_serverapp.port), timeout=20) as sock:
            sock.sendall(f"POST {jp_serverapp.base_url}mlaas4hep/api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Authorization: token {jp_serverapp.identity_provider.token}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {200 * 1024 * 1024}\r\n\r\n"
                         .encode() + b"[" * 1024)
            answer = b""
            while b"\r\n\r\n" not in answer and (block := sock.recv(65536)):
                answer += block
            return answer

    answer = await asyncio.get_running_loop().run_in_executor(None, announce_a_huge_body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_what_answered_500_is_now_a_4xx_with_a_message(jp_fetch, files):
    good = json.dumps(body(files)).encode()
    nested_json = b'{"files": ["a.root"], "model": "x", "preproc": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    nested_preproc: dict = {"x": 1}
    for _ in range(50):
        nested_preproc = {"new_branch": nested_preproc}
    cases = [
        (None, good.replace(b'"1"', b'"\xff\xfe"'), "the request body is not UTF-8: byte 0xff"),
        (body([files[0], "a" * 10_000]), None, "files.1: String should have at most 4096 characters"),
        (body(files, preproc=nested_preproc), None, "preproc: Value error, nested more than 32 levels deep"),
        (None, nested_json, "JSON nested too deeply"),
        (body(files, model="x = " + "-" * 30_000 + "1\n"), None, "model.py: the source nests too deeply"),
        (body(files, model="x = " + "(" * 5000 + ")" * 5000 + "\n"), None, "model.py:1: syntax error"),
        (None, good.replace(b'"chunk_size": 500', b'"retry_wait": 1e400'), "the number 1e400 is out of range"),
        (None, good.replace(b'"chunk_size": 500', b'"validation_split": NaN'), "NaN is not a JSON number"),
        (None, good.replace(b'"chunk_size": 500', b'"test_fraction": Infinity'), "Infinity is not a JSON number"),
        (None, good.replace(b'["1", "0"]', b'[' + b"5" * 5000 + b', 0]'), "the request body is not valid here"),
        (body(files, labels=["5" * 5000, "0"]), None, "label 0 must be an integer or a name of 1 to 200"),
        # numbers JSON allows but params.json does not: the engine's own checks, answered as 400s
        (body(files, params={"chunk_size": 10**19}), None, "params: chunk_size: expected an integer from 1 to"),
        (body(files, params={"chunk_size": 1e19}), None, "params: chunk_size: expected an integer from 1 to"),
        (body(files, params={"seed": 2**32}), None, "params: seed: expected an integer from 0 to 4,294,967,295"),
        (body(files, params={"retry_wait": 1e300}), None, "params: retry_wait: expected a number from 0 to"),
    ]
    for payload, raw, message in cases:
        text = await refused(jp_fetch, payload, raw)
        assert message in text, (message, text)
    assert json.loads((await jp_fetch("mlaas4hep", "api", "v1", "jobs")).body)["jobs"] == []  # nothing queued


async def test_labels_may_be_json_numbers(jp_fetch, files):
    response = await post_jobs(jp_fetch, body(files, labels=[1, 0]))
    assert response.code == 201
    job = json.loads(response.body)
    await jp_fetch("mlaas4hep", "api", "v1", "jobs", job["id"], "cancel", method="POST", body="{}")


async def test_events_query_is_checked_and_a_long_poll_ends_with_its_client(jp_fetch, jp_serverapp, files):
    # a job that is still running when it is cancelled at the end, however fast the engine gets
    job = json.loads((await post_jobs(jp_fetch, body(files, model=SLOW, params={"chunk_size": 100,
                                                                               "epochs": 5000}))).body)
    for value in ("nan", "inf", "-inf", "-1", "x"):
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("mlaas4hep", "api", "v1", "jobs", job["id"], "events",
                           params={"timeout": value}, request_timeout=10)
        assert err.value.code == 400, value
        assert "timeout" in json.loads(err.value.response.body)["message"]

    # a client that asks for 30 s of waiting and goes away after 1 s: the server stops polling for it
    manager = jp_serverapp.web_app.settings["mlaas4hep_manager"]
    calls = []
    real_events = manager.events
    manager.events = lambda *a, **k: calls.append(time.monotonic()) or real_events(*a, **k)
    try:
        port = jp_serverapp.port
        token = jp_serverapp.identity_provider.token
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(f"GET {jp_serverapp.base_url}mlaas4hep/api/v1/jobs/{job['id']}/events?since=999999&timeout=30 "
                     f"HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token {token}\r\n\r\n".encode())
        await asyncio.sleep(1.5)
        assert len(calls) >= 2  # it is waiting
        sock.close()
        await asyncio.sleep(1.0)
        settled = len(calls)
        await asyncio.sleep(1.5)
        assert len(calls) == settled, "the long-poll goes on without its client"
    finally:
        manager.events = real_events
        await jp_fetch("mlaas4hep", "api", "v1", "jobs", job["id"], "cancel", method="POST", body="{}")
