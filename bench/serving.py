"""Model serving under load, on loopback: 1, 8 and 64 concurrent clients, one row per request,
with and without dynamic batching, beside in-process ``predict`` on the same rows, in one run.

    python bench/serving.py [--seconds 4] [--rounds 2] [--framework torch|keras] [--route tfaas|v2]

A real OIDC issuer (tests/oidc) and two ``mlaas4hep serve --no-jobs`` processes on 127.0.0.1
serve the same small MLP artifact (trained here, ttH-like data, 170 features) from one --models
folder: the same server, one with the default dynamic batching (--batch-max-size 256
--batch-max-delay 0.002), one with --batch-max-size 1 (one model call per request: the baseline).
The clients are bench/http_load.py, in a process of their own: keep-alive HTTP/1.1 connections
over raw asyncio streams, each sending the same prepared requests (one row each) back to back for
--seconds, so that the client side costs little of the two shared cores. For each concurrency the
two modes alternate for --rounds rounds and the median round is printed: requests (= rows)/s,
p50 / p99 latency, model calls per request (the service's own counters), the server's and the
clients' CPU time per request, the batched/unbatched ratio, and served rows/s as a fraction of
in-process ``Artifact`` predictions on the same rows (one call per row, and one call for all rows,
with the model call the service makes). Targets of issue 14: at 64 clients batching gives >= 5x
the rows/s of one call per request; p99 <= 50 ms at 8 clients. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import OIDCIssuer, ServiceProcess  # noqa: E402
from support import keras_model, torch_model  # noqa: E402

from common import machine  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def train(folder: Path, framework: str):
    import mlaas4hep
    from mlaas4hep.datagen import write_tth

    write_tth(folder / "sig.root", 3000, signal=True, seed=3)
    write_tth(folder / "bkg.root", 3000, signal=False, seed=3)
    (folder / "files.txt").write_text("sig.root\nbkg.root\n")
    (folder / "labels.txt").write_text("1\n0\n")
    (folder / "model.py").write_text(torch_model(32) if framework == "torch" else keras_model(32))
    ds = mlaas4hep.Dataset(folder / "files.txt", labels=folder / "labels.txt",
                           params={"chunk_size": 3000, "epochs": 1, "batch_size": 256})
    return mlaas4hep.train(ds, folder / "model.py", output=folder / "run")


def write_bodies(path: Path, route: str, model: str, rows: np.ndarray) -> str:
    """One request body per line (one row each); the route's path."""
    width = rows.shape[1]
    with open(path, "w") as f:
        for r in rows:
            if route == "tfaas":
                body = {"model": model, "values": r.tolist()}
            else:
                body = {"inputs": [{"name": "input", "shape": [1, width], "datatype": "FP32", "data": r.tolist()}]}
            f.write(json.dumps(body) + "\n")
    return "/tfaas/json" if route == "tfaas" else f"/v2/models/{model}/infer"


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) of a process so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def load(url: str, token: str, bodies: Path, clients: int, seconds: float) -> dict:
    """bench/http_load.py in its own process (keep-alive HTTP/1.1 on raw asyncio streams)."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "http_load.py"), "--url", url, "--bodies", str(bodies),
                          "--clients", str(clients), "--seconds", str(seconds)],
                         env={**os.environ, "MLAAS4HEP_BENCH_TOKEN": token}, capture_output=True, text=True,
                         timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"the load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def call_cpu(call, rows: np.ndarray, seconds: float = 1.0) -> float:
    """CPU microseconds of one model call on ``rows`` (mean over about ``seconds``), with PyTorch's
    threads as the service sets them (one)."""
    try:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    try:
        call(rows)
        n, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            call(rows)
            n += 1
        return (time.process_time() - cpu) / n * 1e6
    finally:
        if torch is not None:
            torch.set_num_threads(threads)


def asgi_cpu(issuer: str, models: Path, data: Path, token: str, path: str, body: bytes, clients: int, n: int,
             max_batch: int) -> dict:
    """CPU microseconds per request of the service's ASGI app called in this process (no sockets,
    no HTTP parsing): ``n`` requests from ``clients`` concurrent tasks; the model's thread included."""
    from mlaas4hep.service.app import create_app
    from mlaas4hep.service.config import ServeConfig

    app = create_app(ServeConfig(issuer=issuer, audience="mlaas4hep", data_dir=str(data), models_dir=str(models),
                                 no_jobs=True, batch_max_size=max_batch))
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode()),
               (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def one() -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
        sent = {"status": 0}

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]

        await app(scope, receive, send)
        return sent["status"]

    async def run() -> dict:
        async with app.router.lifespan_context(app):
            statuses = [await one() for _ in range(clients)]  # the model loaded, the token remembered
            registry = app.state.service.serving.registry
            before = registry.loaded_model(registry.resolve(registry.owner_of("mlp"), "mlp")).batcher.stats()

            async def client(k: int) -> None:
                for _ in range(k, n, clients):
                    statuses.append(await one())

            cpu = time.process_time()
            await asyncio.gather(*(client(k) for k in range(clients)))
            cpu = time.process_time() - cpu
            after = registry.loaded_model(registry.resolve(registry.owner_of("mlp"), "mlp")).batcher.stats()
        if set(statuses) != {200}:
            raise RuntimeError(f"in-process requests answered {sorted(set(statuses))}")
        return {"cpu_us": cpu / n * 1e6, "calls_per_request": (after["calls"] - before["calls"]) / n}

    return asyncio.run(run())


def stats(url: str, token: str, model: str) -> dict:
    import requests

    return requests.get(f"{url}/api/v1/models/{model}", headers={"Authorization": f"Bearer {token}"},
                        timeout=30).json()["stats"] or {"requests": 0, "calls": 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--framework", choices=("torch", "keras"), default="torch")
    parser.add_argument("--route", choices=("tfaas", "v2"), default="tfaas")
    parser.add_argument("--clients", default="1,8,64")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per point, modes alternating; the median "
                                                               "is printed")
    args = parser.parse_args()
    import requests

    work = Path(tempfile.mkdtemp(prefix="mlaas4hep-bench-serving-"))
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    artifact = train(work, args.framework)
    X, _ = artifact.features({b: a for b, a in _arrays(artifact, work / "sig.root").items()})
    rows = X[:2000]
    print(f"model: {args.framework} MLP ({artifact.n_classes} classes), {X.shape[1]} features; route /{args.route}; "
          f"{args.seconds:.0f}s per point")

    # in-process baselines on the same rows
    adapter = artifact.adapter
    call = getattr(adapter, "predict_batch", adapter.predict)  # what the service calls (Keras: predict_on_batch)
    call(rows[:1])
    n = len(rows)
    start = time.perf_counter()
    done = 0
    while done < n and time.perf_counter() - start < 3.0:  # bounded: Keras' predict costs ms per call
        call(rows[done:done + 1])
        done += 1
    per_row = done / (time.perf_counter() - start)
    start = time.perf_counter()
    call(rows[:n])
    one_call = n / (time.perf_counter() - start)
    print(f"in-process predict: {per_row:,.0f} rows/s one row per call, {one_call:,.0f} rows/s in one call")
    model_cpu = {k: call_cpu(call, rows[:k]) for k in (1, 64)}

    issuer = OIDCIssuer()
    models = work / "models"
    services = {}
    try:
        token = issuer.token("bench")
        env = {"MLAAS4HEP_SERVE_NO_JOBS": "1"}
        services["batched"] = ServiceProcess(issuer.url, work / "batched", models=models, env=env)
        services["unbatched"] = ServiceProcess(issuer.url, work / "unbatched", models=models, env=env,
                                               batch_max_size=1)
        import io
        import tarfile

        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(artifact.path, arcname="artifact")
        r = requests.post(services["batched"].url + "/api/v1/models", headers={"Authorization": f"Bearer {token}"},
                          data={"name": "mlp"}, files={"file": ("a.tar.gz", buffer.getvalue())}, timeout=300)
        r.raise_for_status()
        path = write_bodies(work / "bodies.txt", args.route, "mlp", rows)
        for svc in services.values():  # the model loaded and the token remembered before any CPU time is counted
            load(svc.url + path, token, work / "bodies.txt", 2, 0.5)
        runs: dict[tuple[int, str], list[dict]] = {}
        for clients in [int(c) for c in args.clients.split(",")]:
            for _ in range(args.rounds):
                for mode in ("unbatched", "batched"):  # alternating: both modes see the same load
                    svc = services[mode]
                    before, cpu = stats(svc.url, token, "mlp"), process_cpu(svc.process.pid)
                    res = load(svc.url + path, token, work / "bodies.txt", clients, args.seconds)
                    res["server_cpu_s"] = process_cpu(svc.process.pid) - cpu
                    after = stats(svc.url, token, "mlp")
                    served = after["requests"] - before["requests"]
                    res["calls_per_request"] = (after["calls"] - before["calls"]) / max(served, 1)
                    runs.setdefault((clients, mode), []).append(res)
        # the median round of each point (by rows/s)
        results = {key: sorted(rounds, key=lambda r: r["rows_s"])[len(rounds) // 2] for key, rounds in runs.items()}
        print()
        head = (f"{'clients':>7} | {'mode':<9} | {'rows/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'calls/req':>9} | "
                f"{'server CPU us/req':>17} | {'client CPU us/req':>17} | {'errors':>6} | {'vs per-row':>10} | "
                f"{'vs one call':>11}")
        print(head)
        print("-" * len(head))
        for (clients, mode), res in results.items():
            n = max(res["requests"], 1)
            print(f"{clients:>7} | {mode:<9} | {res['rows_s']:>8,.0f} | {res['p50']:>7.1f} | {res['p99']:>7.1f} | "
                  f"{res['calls_per_request']:>9.3f} | {res['server_cpu_s'] / n * 1e6:>17,.0f} | "
                  f"{res['client_cpu_s'] / n * 1e6:>17,.0f} | {res['errors']:>6} | {res['rows_s'] / per_row:>10.2f} | "
                  f"{res['rows_s'] / one_call:>11.4f}")
        if args.rounds > 1:
            print(f"(median of {args.rounds} rounds by rows/s; all rounds' rows/s: " + "; ".join(
                f"{c}/{m}: " + ", ".join(f"{r['rows_s']:,.0f}" for r in rounds) for (c, m), rounds in runs.items())
                + ")")
        print()
        for clients in sorted({c for c, _ in results}):
            ratio = results[clients, "batched"]["rows_s"] / results[clients, "unbatched"]["rows_s"]
            cpu = [results[clients, m]["server_cpu_s"] / max(results[clients, m]["requests"], 1)
                   for m in ("unbatched", "batched")]
            print(f"{clients:>3} clients: batched / one call per request = {ratio:.2f}x rows/s; server CPU per "
                  f"request {cpu[0] / cpu[1]:.2f}x less")
        if (64, "batched") in results:
            ratio = results[64, "batched"]["rows_s"] / results[64, "unbatched"]["rows_s"]
            print(f"target at 64 clients >= 5x: {'met' if ratio >= 5 else 'NOT met'} ({ratio:.2f}x)")
        if (8, "batched") in results:
            p99 = results[8, "batched"]["p99"]
            print(f"target p99 <= 50 ms at 8 clients (batched): {'met' if p99 <= 50 else 'NOT met'} ({p99:.1f} ms)")
        print()
        print("where a request's time goes (CPU microseconds per request; one row each):")
        threads = ", 1 thread as served" if args.framework == "torch" else ""
        print(f"  the model call, in process ({args.framework}{threads}): {model_cpu[1]:,.0f} for 1 row, "
              f"{model_cpu[64]:,.0f} for 64 rows ({model_cpu[64] / 64:,.1f} per row)")
        body = (work / "bodies.txt").read_bytes().split(b"\n", 1)[0]
        for mode, size in (("unbatched", 1), ("batched", 256)):
            app_cpu = asgi_cpu(issuer.url, models, work / f"asgi-{mode}", token, path, body, 64, 3000, size)
            print(f"  the service's ASGI app in process, 64 concurrent requests, no sockets, {mode}: "
                  f"{app_cpu['cpu_us']:,.0f} (model calls per request {app_cpu['calls_per_request']:.3f})")
        for clients in sorted({c for c, _ in results}):
            print(f"  the service over HTTP at {clients} clients (server process, table above): "
                  f"{results[clients, 'unbatched']['server_cpu_s'] / results[clients, 'unbatched']['requests'] * 1e6:,.0f}"
                  f" unbatched, {results[clients, 'batched']['server_cpu_s'] / results[clients, 'batched']['requests'] * 1e6:,.0f}"
                  " batched")
        print("  batching can save at most the model call's share of a request's CPU time; the rest (HTTP, JSON,\n"
              "  token lookup, routing, validation, the response) is paid per request in both modes")
        print(f"load average after the run: {os.getloadavg()[0]:.1f} (2-core machine shared with other work)")
    finally:
        for svc in services.values():
            svc.stop()
        issuer.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _arrays(artifact, path: Path) -> dict:
    import uproot

    with uproot.open(path) as f:
        arrays = f[artifact.tree].arrays(artifact.contract["branches"], entry_stop=3000)
    return {b: arrays[b] for b in arrays.fields}


if __name__ == "__main__":
    sys.exit(main())
