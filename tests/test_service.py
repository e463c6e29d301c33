"""``mlaas4hep serve`` as a real process on loopback, with tokens from a real OIDC issuer
(oauth2-mock-server, client-credentials grant): the forged-token corpus, isolation between
users, uploads, limits, the jobs API and the paper's curl calls."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mlaas4hep.datagen import write_tth
from servers import OIDCIssuer, ServiceProcess
from support import torch_model

AUD = "mlaas4hep"
PARAMS = {"chunk_size": 1000, "epochs": 2, "batch_size": 128, "identifier": "run,event,luminosityBlock"}


@pytest.fixture(scope="module")
def service(oidc_issuer, tmp_path_factory):
    """The service for the issuer's tokens: scope 'mlaas4hep' or group '/cms' needed."""
    svc = ServiceProcess(oidc_issuer.url, tmp_path_factory.mktemp("service") / "data", audience=AUD,
                         required_scope="mlaas4hep", allowed_groups="/cms", max_archive_members=200,
                         max_unpacked_bytes=20 << 20)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def tokens(oidc_issuer):
    return {user: oidc_issuer.token(user) for user in ("alice", "bob")}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The paper's upload folder: two ROOT files, files.txt (relative), labels.txt, model.py,
    params.json, and its tar.gz."""
    base = tmp_path_factory.mktemp("inputs")
    folder = base / "folder_to_upload"
    folder.mkdir()
    write_tth(folder / "sig.root", 2000, signal=True, seed=5, separation=1.5)
    write_tth(folder / "bkg.root", 2000, signal=False, seed=5, separation=1.5)
    (folder / "files.txt").write_text("sig.root\nbkg.root\n")
    (folder / "labels.txt").write_text("1\n0\n")
    (folder / "model.py").write_text(torch_model())
    (folder / "params.json").write_text(json.dumps(PARAMS))
    (folder / "specs_old.json").write_text("{}")
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with tarfile.open(base / "folder_to_upload.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="folder_to_upload")
    return base


def wait_finished(url: str, headers: dict, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(url, headers=headers, timeout=10).json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"not finished after {timeout}s: {body}")


# -- tokens ------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(kind: str, issuer: OIDCIssuer, other: OIDCIssuer) -> str:
    good = issuer.token("mallory")
    head, body, sig = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    if kind == "expired":
        return issuer.token("mallory", exp_in="-3600")
    if kind == "not yet valid":
        return issuer.token("mallory", nbf_in="3600")
    if kind == "wrong issuer":
        return issuer.token("mallory", iss="https://other.example.org")
    if kind == "wrong issuer, odd characters":
        return issuer.token("mallory", iss="https://\u03bb\u00e9vil.example/\r\nX-Injected: yes")
    if kind == "wrong audience":
        return issuer.token("mallory", audience="another-service")
    if kind == "bad signature":
        raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
        raw[10] ^= 0x55
        return f"{head}.{body}.{b64(bytes(raw))}"
    if kind == "alg none":
        return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{body}."
    if kind == "HS256 with the issuer's public key":
        jwks = requests.get(issuer.url + "/jwks", timeout=10).json()["keys"][0]
        pem = jwt.PyJWK(jwks).key.public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        signing = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': jwks['kid']}).encode())}.{body}"
        return f"{signing}.{b64(hmac.new(pem, signing.encode(), hashlib.sha256).digest())}"
    if kind == "unknown kid":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "not-a-key-of-the-issuer"})
    if kind == "a key from another issuer":
        return other.token("mallory", iss=issuer.url)
    if kind == "missing scope":
        return issuer.token("mallory", scope="openid profile")
    raise AssertionError(kind)


CORPUS = {  # kind: (status, words in the reason)
    "expired": (401, "expired"),
    "not yet valid": (401, "not valid yet"),
    "wrong issuer": (401, "issued by 'https://other.example.org'"),
    "wrong issuer, odd characters": (401, "issued by 'https://\u03bb\u00e9vil.example/\\r\\nX-Injected: yes'"),
    "wrong audience": (401, "not meant for this service"),
    "bad signature": (401, "signature does not verify"),
    "alg none": (401, "algorithm 'none' is not accepted"),
    "HS256 with the issuer's public key": (401, "algorithm 'HS256' is not accepted"),
    "unknown kid": (401, "key the issuer does not publish"),
    "a key from another issuer": (401, "key the issuer does not publish"),
    "missing scope": (403, "lacks the scope 'mlaas4hep' or one of the groups /cms"),
}


@pytest.fixture(scope="module")
def other_issuer(oidc_issuer):
    issuer = OIDCIssuer()
    yield issuer
    issuer.close()


@pytest.mark.parametrize("kind", list(CORPUS))
def test_forged_tokens_are_refused_with_a_reason(service, oidc_issuer, other_issuer, kind):
    status, words = CORPUS[kind]
    token = forged(kind, oidc_issuer, other_issuer)
    for method, path in (("GET", "/api/v1/whoami"), ("GET", "/api/v1/jobs"), ("POST", "/submit")):
        r = requests.request(method, service.url + path, headers=auth(token), timeout=10)
        assert r.status_code == status, (kind, path, r.text)
        assert words in r.json()["message"], r.text
        assert "X-Injected" not in r.headers
        if status == 401:
            assert r.json()["reason"] == "invalid_token"
            assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token", error_description="')
        else:
            assert r.json()["reason"] == "insufficient_scope"


@pytest.mark.parametrize("headers, words", [
    ({}, "no bearer token"),
    ({"Authorization": "Bearer"}, "malformed Authorization header"),
    ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "malformed Authorization header"),
    ({"Authorization": "Bearer two tokens"}, "malformed Authorization header"),
    ({"Authorization": "Bearer not.a.jwt"}, "not a well-formed JWT"),
], ids=["no header", "empty bearer", "basic", "two words", "garbage"])
def test_missing_and_malformed_headers_answer_401(service, headers, words):
    r = requests.get(service.url + "/api/v1/jobs", headers=headers, timeout=10)
    assert r.status_code == 401 and words in r.json()["message"]
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_a_token_in_the_query_string_is_not_accepted(service, tokens):
    r = requests.get(service.url + "/api/v1/whoami", params={"access_token": tokens["alice"]}, timeout=10)
    assert r.status_code == 401 and "query string are not accepted" in r.json()["message"]
    assert requests.get(service.url + "/api/v1/whoami", headers=auth(tokens["alice"]), timeout=10).status_code == 200


def test_the_user_comes_from_the_token_and_groups_can_stand_for_the_scope(service, oidc_issuer, tokens):
    me = requests.get(service.url + "/api/v1/whoami", headers=auth(tokens["alice"]), timeout=10).json()
    assert me["issuer"] == oidc_issuer.url and me["subject"] == "alice" and me["name"] == "alice"
    assert me["scopes"] == ["mlaas4hep"] and me["via"] == "bearer"
    member = oidc_issuer.token("carol", scope="openid", groups="/cms,/atlas")
    r = requests.get(service.url + "/api/v1/whoami", headers=auth(member), timeout=10)
    assert r.status_code == 200 and r.json()["groups"] == ["/cms", "/atlas"]
    outsider = oidc_issuer.token("dave", scope="openid", groups="/atlas")
    r = requests.get(service.url + "/api/v1/whoami", headers=auth(outsider), timeout=10)
    assert r.status_code == 403 and r.json()["reason"] == "insufficient_scope"
    # X-Forwarded-* headers from an address that is not a configured proxy count for nothing
    r = requests.get(service.url + "/api/v1/whoami", headers={"X-Forwarded-User": "alice"}, timeout=10)
    assert r.status_code == 401


def test_health_needs_no_token(service):
    r = requests.get(service.url + "/api/v1/health", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_unknown_kids_refresh_the_keys_at_most_once_per_interval(oidc_issuer):
    """Key rotation: a token with the issuer's new kid is accepted after one JWKS fetch; a flood
    of unknown kids makes no more fetches inside the refresh interval."""
    from mlaas4hep.service.tokens import AuthError, TokenValidator

    issuer = OIDCIssuer()  # its own issuer: rotating the shared one would disturb other tests
    try:
        validator = TokenValidator(issuer.url, AUD, refresh_interval=3600)
        assert validator.validate(issuer.token("alice")).subject == "alice"
        assert validator.keys.fetches == 1
        intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        claims = jwt.decode(issuer.token("alice"), options={"verify_signature": False})
        for i in range(20):
            with pytest.raises(AuthError, match="does not publish"):
                validator.validate(jwt.encode(claims, intruder, algorithm="RS256", headers={"kid": f"flood-{i}"}))
        assert validator.keys.fetches == 1
        new_kid = requests.post(issuer.url + "/test/rotate", timeout=10).json()["kid"]
        rotated = next(t for t in (issuer.token("alice") for _ in range(4))
                       if jwt.get_unverified_header(t)["kid"] == new_kid)
        with pytest.raises(AuthError, match="does not publish"):
            validator.validate(rotated)  # inside the interval: not fetched again
        validator.keys.refresh_interval = 0
        assert validator.validate(rotated).subject == "alice"
        assert validator.keys.fetches == 2
    finally:
        issuer.close()


# -- the jobs API, uploads, isolation ----------------------------------------------------------


def upload(service, token, archive: Path, path="/api/v1/uploads", **params):
    with open(archive, "rb") as stream:
        return requests.post(service.url + path, headers=auth(token), params=params,
                             files={"file": (archive.name, stream, "application/gzip")}, timeout=60)


@pytest.mark.slow
def test_a_job_through_the_jobs_api_runs_and_only_its_owner_sees_it(service, tokens, inputs):
    r = upload(service, tokens["alice"], inputs / "folder_to_upload.tar.gz")
    assert r.status_code == 201, r.text
    up = r.json()
    assert "folder_to_upload/sig.root" in up["files"] and up["path"] == f"uploads/{up['id']}"
    base = f"{up['path']}/folder_to_upload"
    request = {"files": [f"{base}/sig.root", f"{base}/bkg.root"], "labels": ["1", "0"],
               "model_path": f"{base}/model.py", "params": PARAMS}
    r = requests.post(service.url + "/api/v1/jobs", headers=auth(tokens["alice"]), json=request, timeout=30)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["name"] == "model.py" and job["status"] in ("queued", "running")
    url = f"{service.url}/api/v1/jobs/{job['id']}"
    done = wait_finished(url, auth(tokens["alice"]))
    assert done["status"] == "succeeded", done
    assert done["metrics"]["test_auc"] > 0.7
    page = requests.get(url + "/events", params={"since": 0}, headers=auth(tokens["alice"]), timeout=40).json()
    assert page["events"][-1]["event"] == "finished" and page["status"] == "succeeded"
    later = requests.get(url + "/events", params={"since": page["last_seq"], "timeout": 1},
                         headers=auth(tokens["alice"]), timeout=40).json()
    assert later["events"] == [] and later["last_seq"] == page["last_seq"]
    alice = requests.get(service.url + "/api/v1/whoami", headers=auth(tokens["alice"]), timeout=10).json()["id"]
    assert list((service.data_dir / "users" / alice / ".cache").rglob("*.json")), "the specs cache is alice's own"
    artifact = requests.get(url + "/artifact", headers=auth(tokens["alice"]), timeout=30)
    assert artifact.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(artifact.content), mode="r:gz") as tar:
        assert "artifact/mlaas4hep.json" in tar.getnames()

    # bob: the same ids are not his
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("GET", "/events"), ("GET", "/logs"),
                           ("GET", "/artifact")):
        r = requests.request(method, url + suffix, headers=auth(tokens["bob"]), timeout=30)
        assert r.status_code == 404, (method, suffix, r.text)
        assert r.json()["reason"] == "not_found"
    assert requests.get(service.url + "/api/v1/jobs", headers=auth(tokens["bob"]), timeout=10).json()["jobs"] == []
    ids = [j["id"] for j in requests.get(service.url + "/api/v1/jobs", headers=auth(tokens["alice"]),
                                         timeout=10).json()["jobs"]]
    assert job["id"] in ids
    r = requests.delete(f"{service.url}/api/v1/uploads/{up['id']}", headers=auth(tokens["bob"]), timeout=10)
    assert r.status_code == 404
    # nor can bob name alice's files, by any path
    alice_id = requests.get(service.url + "/api/v1/whoami", headers=auth(tokens["alice"]), timeout=10).json()["id"]
    for name in (f"../{alice_id}/{base}/sig.root", str(service.data_dir / "users" / alice_id / base / "sig.root"),
                 "/etc/passwd", f"{base}/sig.root"):
        body = {**request, "files": [name, name]}
        r = requests.post(service.url + "/api/v1/jobs", headers=auth(tokens["bob"]), json=body, timeout=30)
        assert r.status_code == 400, (name, r.text)
        assert "outside your folder" in r.json()["message"] or "not found in your folder" in r.json()["message"]
        assert str(service.data_dir) not in r.json()["message"]
    # alice deletes her finished job and her upload
    assert requests.delete(url, headers=auth(tokens["alice"]), timeout=10).status_code == 204
    assert requests.get(url, headers=auth(tokens["alice"]), timeout=10).status_code == 404
    r = requests.delete(f"{service.url}/api/v1/uploads/{up['id']}", headers=auth(tokens["alice"]), timeout=10)
    assert r.status_code == 204


def test_bad_requests_answer_400_with_what_and_where(service, tokens):
    h = auth(tokens["alice"])
    r = requests.post(service.url + "/api/v1/jobs", headers=h, data="{not json", timeout=10)
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    r = requests.post(service.url + "/api/v1/jobs", headers=h, json={"files": ["a.root"]}, timeout=10)
    assert r.status_code == 400 and "give exactly one of 'model'" in r.json()["message"]
    r = requests.get(service.url + "/api/v1/jobs/x/events", params={"since": "soon"}, headers=h, timeout=10)
    assert r.status_code == 400 and "since" in r.json()["message"]


@pytest.mark.parametrize("name, members, words", [
    ("tar-slip", [("../../escaped.txt", b"x")], "'..' is not allowed"),
    ("symlink", [("folder/link", "/etc/passwd")], "links are not allowed"),
], ids=["tar-slip", "symlink"])
def test_unsafe_uploads_are_refused(service, tokens, tmp_path, name, members, words):
    archive = tmp_path / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for member, content in members:
            info = tarfile.TarInfo(member)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    for path, params in (("/api/v1/uploads", {}), ("/upload", {"name": "evil"})):
        r = upload(service, tokens["alice"], archive, path, **params)
        assert r.status_code == 400 and r.json()["reason"] == "unsafe_archive", r.text
        assert words in r.json()["message"]
    assert not list(service.data_dir.parent.rglob("escaped.txt"))


def test_a_zip_bomb_upload_is_refused(service, tokens, tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    info = tarfile.TarInfo("folder/zeros.bin")
    info.size = 64 << 20  # 64 MiB of zeros in ~64 KiB, over the service's 20 MiB unpacked cap
    with tarfile.open(archive, "w:gz", compresslevel=9) as tar:
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    r = upload(service, tokens["alice"], archive)
    assert r.status_code == 400 and "unpacks to more than" in r.json()["message"]
    uploads = requests.get(service.url + "/api/v1/uploads", headers=auth(tokens["alice"]), timeout=10).json()
    assert all("folder/zeros.bin" not in u["files"] for u in uploads["uploads"])


# -- the paper's curl calls ---------------------------------------------------------------------


def http(method: str, url: str, token: str, *, data_file: Path | None = None, form_file: Path | None = None,
         out: Path | None = None) -> tuple[int, bytes]:
    """One call with real curl where it exists (as the paper does), else requests."""
    if shutil.which("curl"):
        args = ["curl", "-s", "-S", "-X", method, "-H", f"Authorization: Bearer {token}", "-w", "\n%{http_code}"]
        if data_file is not None:
            args += ["-d", f"@{data_file}"]
        if form_file is not None:
            args += ["-F", f"file=@{form_file}"]
        if out is not None:
            args += ["-o", str(out)]
        done = subprocess.run(args + [url], capture_output=True, timeout=120, check=True)
        body, _, code = done.stdout.rpartition(b"\n")
        return int(code), (out.read_bytes() if out is not None else body)
    headers = auth(token)
    kwargs = {}
    if data_file is not None:
        kwargs["data"] = data_file.read_bytes()
        headers["Content-Type"] = "application/x-www-form-urlencoded"  # what curl -d sends
    if form_file is not None:
        kwargs["files"] = {"file": (form_file.name, form_file.read_bytes())}
    r = requests.request(method, url, headers=headers, timeout=120, **kwargs)
    if out is not None:
        out.write_bytes(r.content)
    return r.status_code, r.content


@pytest.mark.slow
def test_the_papers_curl_calls_work(service, tokens, inputs, tmp_path):
    token = tokens["alice"]
    code, body = http("POST", f"{service.url}/upload?name=luca", token, form_file=inputs / "folder_to_upload.tar.gz")
    assert code == 201, body
    assert "files.txt" in json.loads(body)["files"]
    submit = tmp_path / "input.json"
    submit.write_text(json.dumps({"name": "luca", "device": "cpu", "memory": "3gb", "cpus": "2",
                                  "files": "files.txt", "labels": "labels.txt", "model": "model.py",
                                  "params": "params.json", "host_folder": "/Users/luca/folder_test"}))
    code, body = http("POST", f"{service.url}/submit", token, data_file=submit)
    assert code == 201, body
    created = json.loads(body)
    assert created["process_name"] == "luca_1" and created["job_id"]

    # bob has no process luca_1, and his own folder "luca" would be a different one
    r = requests.get(f"{service.url}/status", params={"process_name": "luca_1"}, headers=auth(tokens["bob"]),
                     timeout=10)
    assert r.status_code == 404
    # the folder of a queued or running job is neither removed nor replaced under it
    r = requests.get(f"{service.url}/delete_folder", params={"name": "luca"}, headers=auth(token), timeout=10)
    assert r.status_code == 409 and "in use by job" in r.json()["message"]
    r = upload(service, token, inputs / "folder_to_upload.tar.gz", "/upload", name="luca")
    assert r.status_code == 409 and r.json()["reason"] == "conflict"

    status = wait_finished(f"{service.url}/status?process_name=luca_1", auth(token))
    assert status == {"process_name": "luca_1", "job_id": created["job_id"], "status": "succeeded", "error": None}
    code, body = http("GET", f"{service.url}/status_docker?process_name=luca_1", token)
    assert code == 200 and json.loads(body)["status"] == "succeeded"
    code, log = http("GET", f"{service.url}/logs?process_name=luca_1", token, out=tmp_path / "logs.txt")
    assert code == 200 and f"mlaas4hep job {created['job_id']}" in log.decode()
    code, model = http("GET", f"{service.url}/model?process_name=luca_1", token, out=tmp_path / "luca_1.tar.gz")
    assert code == 200
    with tarfile.open(tmp_path / "luca_1.tar.gz") as tar:
        assert "artifact/mlaas4hep.json" in tar.getnames()

    # a restart keeps the job, its process name and its events
    service.restart()
    code, body = http("GET", f"{service.url}/status?process_name=luca_1", token)
    assert code == 200 and json.loads(body)["status"] == "succeeded"
    r = requests.get(f"{service.url}/api/v1/jobs/{created['job_id']}/events", headers=auth(token), timeout=10)
    assert r.json()["events"][-1]["event"] == "finished"

    code, body = http("GET", f"{service.url}/delete_specs?name=luca", token)
    assert code == 200
    removed = json.loads(body)["files"]
    assert removed[0] == "specs_old.json" and len(removed) > 1 and all(f.startswith(".cache/") for f in removed[1:])
    code, body = http("GET", f"{service.url}/delete_folder?name=luca", token)
    assert code == 200 and "model.py" in json.loads(body)["files"]
    code, body = http("GET", f"{service.url}/delete_folder?name=luca", token)
    assert code == 404 and "no folder 'luca'" in json.loads(body)["message"]
    code, body = http("POST", f"{service.url}/submit", token, data_file=submit)
    assert code == 404
    code, body = http("GET", f"{service.url}/model?process_name=luca_9", token)
    assert code == 404 and json.loads(body)["reason"] == "not_found"


@pytest.mark.parametrize("change, status, words", [
    ({"files": "../../../etc/passwd"}, 400, "outside your folder"),
    ({"model": "nope.py"}, 400, "'nope.py' not found in your folder"),
    ({"params": "deep.json"}, 400, "input.json: params: deep.json is nested too deeply"),
    ({"params": "model.py"}, 400, "cannot read model.py as JSON"),
    ({"device": "tpu"}, 400, "device must be 'cpu' or 'gpu'"),
    ({"memory": "lots"}, 400, "memory must look like"),
    ({"colour": "blue"}, 400, "colour: Extra inputs are not permitted"),
    ({"name": "../x"}, 400, "not a valid folder name"),
    ({"name": "nobody"}, 404, "you have no folder 'nobody'"),
])
def test_original_submit_mistakes_answer_4xx(service, tokens, inputs, tmp_path, change, status, words):
    r = upload(service, tokens["bob"], inputs / "folder_to_upload.tar.gz", "/upload", name="mine")
    assert r.status_code == 201, r.text
    body = {"name": "mine", "files": "files.txt", "labels": "labels.txt", "model": "model.py",
            "params": "params.json", **change}
    r = requests.post(f"{service.url}/submit", headers=auth(tokens["bob"]), data=json.dumps(body), timeout=30)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


# -- limits, proxy mode, the document ----------------------------------------------------------


def test_per_user_limits_answer_429_and_413(oidc_issuer, inputs, tmp_path):
    archive = inputs / "folder_to_upload.tar.gz"
    unpacked = sum(p.stat().st_size for p in (inputs / "folder_to_upload").iterdir())
    # room for one copy of the inputs, not for two
    disk = unpacked + archive.stat().st_size // 2
    svc = ServiceProcess(oidc_issuer.url, tmp_path / "data", audience=AUD, max_active_jobs=1,
                         max_upload_bytes=archive.stat().st_size + 10_000, max_disk_bytes=disk)
    try:
        token = oidc_issuer.token("erin")
        big = tmp_path / "big.tar.gz"
        with tarfile.open(big, "w:gz") as tar:
            data = os.urandom(archive.stat().st_size + 20_000)
            info = tarfile.TarInfo("folder/noise.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        r = upload(svc, token, big)
        assert r.status_code == 413 and f"at most {archive.stat().st_size + 10_000} are accepted" in r.json()["message"]
        r = upload(svc, token, archive)
        assert r.status_code == 201, r.text
        up = r.json()
        base = f"{up['path']}/folder_to_upload"
        request = {"files": [f"{base}/sig.root", f"{base}/bkg.root"], "labels": ["1", "0"],
                   "model_path": f"{base}/model.py", "params": {**PARAMS, "epochs": 50, "chunk_size": 200}}
        first = requests.post(svc.url + "/api/v1/jobs", headers=auth(token), json=request, timeout=30)
        assert first.status_code == 201, first.text
        second = requests.post(svc.url + "/api/v1/jobs", headers=auth(token), json=request, timeout=30)
        assert second.status_code == 429 and "the limit is 1" in second.json()["message"]
        assert second.json()["reason"] == "too_many_jobs"
        # another user is not held back by erin's jobs (and cannot name her files)
        other = oidc_issuer.token("frank")
        r = requests.post(svc.url + "/api/v1/jobs", headers=auth(other), json=request, timeout=30)
        assert r.status_code == 400 and "not found in your folder" in r.json()["message"]
        cancelled = requests.post(f"{svc.url}/api/v1/jobs/{first.json()['id']}/cancel", headers=auth(token), timeout=30)
        assert cancelled.json()["status"] == "cancelled"
        r = upload(svc, token, archive)
        assert r.status_code == 413 and "over your disk limit" in r.json()["message"], r.text
        assert len(requests.get(svc.url + "/api/v1/uploads", headers=auth(token), timeout=10).json()["uploads"]) == 1
    finally:
        svc.stop()


def test_proxy_headers_count_only_from_trusted_proxies(oidc_issuer, tmp_path):
    svc = ServiceProcess(oidc_issuer.url, tmp_path / "data", audience=AUD, trusted_proxies="127.0.0.1",
                         allowed_groups="/cms")
    try:
        r = requests.get(svc.url + "/api/v1/whoami", timeout=10,
                         headers={"X-Forwarded-User": "gina", "X-Forwarded-Email": "gina@cern.ch",
                                  "X-Forwarded-Groups": "/cms"})
        assert r.status_code == 200, r.text
        assert r.json()["subject"] == "gina" and r.json()["name"] == "gina@cern.ch" and r.json()["via"] == "proxy"
        r = requests.get(svc.url + "/api/v1/whoami", headers={"X-Forwarded-User": "gina"}, timeout=10)
        assert r.status_code == 403
        token = oidc_issuer.token("hank", groups="/cms")
        r = requests.get(svc.url + "/api/v1/whoami", headers={"X-Forwarded-Access-Token": token}, timeout=10)
        assert r.status_code == 200 and r.json()["subject"] == "hank" and r.json()["via"] == "bearer"
        forged_token = oidc_issuer.token("hank", groups="/cms", exp_in="-100")
        r = requests.get(svc.url + "/api/v1/whoami", headers={"X-Forwarded-Access-Token": forged_token}, timeout=10)
        assert r.status_code == 401
        # X-Forwarded-For cannot make a request look as if it came from the proxy
        r = requests.get(svc.url + "/api/v1/whoami", headers={"X-Forwarded-User": "gina", "X-Forwarded-For": "10.9.8.7",
                                                               "X-Forwarded-Groups": "/cms"}, timeout=10)
        assert r.status_code == 200
    finally:
        svc.stop()
    # with another proxy address configured, the same headers from here count for nothing
    svc = ServiceProcess(oidc_issuer.url, tmp_path / "data2", audience=AUD, trusted_proxies="10.9.8.7")
    try:
        for headers in ({"X-Forwarded-User": "gina"}, {"X-Forwarded-User": "gina", "X-Forwarded-For": "10.9.8.7"}):
            r = requests.get(svc.url + "/api/v1/whoami", headers=headers, timeout=10)
            assert r.status_code == 401 and "no bearer token" in r.json()["message"]
    finally:
        svc.stop()


def test_the_served_document_is_the_checked_in_one_and_covers_every_route(service, tokens):
    from openapi_spec_validator import validate

    from mlaas4hep.service import openapi
    from mlaas4hep.service.app import create_app
    from mlaas4hep.service.config import ServeConfig

    checked_in = openapi.DOCUMENT.read_text()
    assert checked_in == openapi.render(), "run: python -m mlaas4hep.service.openapi"
    document = json.loads(checked_in)
    validate(document)
    served = requests.get(service.url + "/api/v1/openapi.json", headers=auth(tokens["alice"]), timeout=10)
    assert served.json() == document
    app = create_app(ServeConfig(issuer="http://127.0.0.1:1", audience=AUD))
    routes = {(m, r.path[len("/api/v1"):]) for r in app.state.api_router.routes for m in r.methods if m != "HEAD"}
    documented = {(m.upper(), path) for path, item in document["paths"].items() for m in item}
    assert routes == documented


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_deviation_from_the_document(service, oidc_issuer, inputs, tmp_path):
    """Property-based requests made from the OpenAPI document, with a valid token: no 5xx, and
    status codes, content types, bodies and headers as documented (bounded: 10 examples each).
    The user has an upload and a job, so that the stateful phase follows the document's links
    to real ids (events, logs, cancel, delete, artifact of a real job)."""
    import sys

    token = oidc_issuer.token("schemathesis")
    up = upload(service, token, inputs / "folder_to_upload.tar.gz").json()
    base = f"{up['path']}/folder_to_upload"
    job = requests.post(service.url + "/api/v1/jobs", headers=auth(token), timeout=30, json={
        "files": [f"{base}/sig.root", f"{base}/bkg.root"], "labels": [1, 0], "model_path": f"{base}/model.py",
        "params": PARAMS})
    assert job.status_code == 201, job.text
    from mlaas4hep.service.openapi import DOCUMENT

    checks = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
              "response_headers_conformance,unsupported_method")
    done = subprocess.run([sys.executable, "-m", "schemathesis.cli", "run", str(DOCUMENT), "--url",
                           service.url + "/api/v1", "-H", f"Authorization: Bearer {token}", "--checks", checks,
                           "-n", "10", "--seed", "1", "--no-color", "--request-timeout", "40"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # its cache: not in the repo
    # the job, if the fuzzing left it running, ends with the test
    requests.post(f"{service.url}/api/v1/jobs/{job.json()['id']}/cancel", headers=auth(token), timeout=30)
    summary = done.stdout[done.stdout.find("SUMMARY"):]
    failures = done.stdout[done.stdout.find("FAILURES"):done.stdout.find("SUMMARY")]
    assert done.returncode == 0, failures[:8000] + done.stderr[-2000:]
    tested = int(summary.split("Tested:")[1].split()[0])
    assert tested == sum(len(item) for item in json.loads(DOCUMENT.read_text())["paths"].values())
    counts = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counts and int(counts[1]) == int(counts[2]) > 100, summary


def test_a_remembered_token_is_refused_once_it_expires(oidc_issuer):
    from mlaas4hep.service.tokens import AuthError, TokenValidator

    validator = TokenValidator(oidc_issuer.url, AUD, leeway=0)
    token = oidc_issuer.token("alice", exp_in="2")
    assert validator.validate(token).subject == "alice"
    assert validator.cached(token) is not None
    time.sleep(max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.5)
    assert validator.cached(token) is None
    with pytest.raises(AuthError, match="expired"):
        validator.validate(token)


def test_an_unreachable_issuer_answers_503_not_500(oidc_issuer, tmp_path):
    from servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    svc = ServiceProcess(dead, tmp_path / "data", audience=AUD)
    try:
        token = oidc_issuer.token("alice", iss=dead)  # names the dead issuer, so its keys are looked up
        r = requests.get(svc.url + "/api/v1/jobs", headers=auth(token), timeout=30)
        assert r.status_code == 503 and r.json()["reason"] == "issuer_unavailable"
        assert "cannot read the issuer's discovery document" in r.json()["message"] and r.headers["Retry-After"]
        assert requests.get(svc.url + "/api/v1/health", timeout=10).status_code == 200
    finally:
        svc.stop()


@pytest.mark.parametrize("path, kwargs, words", [
    ("/api/v1/uploads", {"data": b"garbage--xyz", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}},
     "the multipart body cannot be read"),
    ("/api/v1/uploads", {"files": {"other": ("a.tar.gz", b"x")}}, "no archive: send it in the multipart field 'file'"),
    ("/api/v1/uploads", {"data": b"x"}, "send the archive as multipart/form-data"),
    ("/api/v1/uploads", {"files": {"file": ("a.tar.gz", b"not gzip")}}, "not a readable tar.gz archive"),
    ("/upload", {"files": {"file": ("a.tar.gz", b"x")}}, "no folder name given"),
    ("/submit", {"data": b"[1, 2]"}, "input.json must be a JSON object"),
    ("/submit", {"data": b"{\"name\": "}, "not valid JSON"),
    ("/api/v1/jobs", {"data": b"[" * 200_000}, "nested too deeply"),
    ("/api/v1/jobs", {"json": {"files": ["a"], "model": "", "params": {"a": json.loads("[" * 40 + "]" * 40)}}},
     "params: Value error, nested more than 32 levels deep"),
], ids=["bad-multipart", "no-file-field", "not-multipart", "not-gzip", "upload-no-name", "submit-list",
        "submit-bad-json", "deep-json", "deep-params"])
def test_malformed_uploads_and_submissions_answer_400(service, tokens, path, kwargs, words):
    headers = {**auth(tokens["alice"]), **kwargs.pop("headers", {})}
    r = requests.post(service.url + path, headers=headers, timeout=30, **kwargs)
    assert r.status_code == 400 and words in r.json()["message"], r.text


@pytest.mark.slow
def test_the_python_client_speaks_to_the_service(service, oidc_issuer, inputs, tmp_path):
    """mlaas4hep.client.Client, as the magic and widgets use it, against the remote service."""
    from mlaas4hep.client import Client, ServerError

    client = Client(service.url + "/api/v1", token=oidc_issuer.token("ivan"))
    up = client.upload(inputs / "folder_to_upload")  # a folder, packed by the client
    base = f"{up['path']}/folder_to_upload"
    assert "folder_to_upload/model.py" in up["files"]
    job = client.submit(files=[f"{base}/sig.root", f"{base}/bkg.root"], labels=[1, 0], model_path=f"{base}/model.py",
                        params=PARAMS)
    seen = []
    done = client.follow(job.id, on_event=seen.append, timeout=240)
    assert done.status == "succeeded", client.logs(job.id).text[-2000:]
    assert seen[-1]["event"] == "finished" and [e["seq"] for e in seen] == sorted({e["seq"] for e in seen})
    folder = client.artifact(job.id, tmp_path)
    assert (folder / "mlaas4hep.json").exists()
    other = Client(service.url + "/api/v1", token=oidc_issuer.token("judy"))
    with pytest.raises(ServerError) as err:
        other.job(job.id)
    assert err.value.status == 404


@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_other_asymmetric_algorithms_of_an_issuer_are_accepted(oidc_issuer, alg):  # oidc_issuer: node is there
    from mlaas4hep.service.tokens import TokenValidator

    issuer = OIDCIssuer(alg=alg)
    try:
        token = issuer.token("kim", scope="mlaas4hep openid")
        assert jwt.get_unverified_header(token)["alg"] == alg
        user = TokenValidator(issuer.url, AUD, required_scope="mlaas4hep").validate(token)
        assert (user.issuer, user.subject, user.scopes) == (issuer.url, "kim", ("mlaas4hep", "openid"))
    finally:
        issuer.close()
