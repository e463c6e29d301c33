"""Model serving under load, on loopback: 1, 8 and 64 concurrent clients, one row per request,
with and without dynamic batching, beside in-process ``predict`` on the same rows, in one run.

    python bench/serving.py [--seconds 5] [--framework torch|keras] [--route tfaas|v2]

A real OIDC issuer (tests/oidc) and two ``mlaas4hep serve --no-jobs`` processes on 127.0.0.1
serve the same small MLP artifact (trained here, ttH-like data, 166 features) from one --models
folder: one with the default dynamic batching (--batch-max-size 256 --batch-max-delay 0.002),
one with --batch-max-size 1 (one model call per request: the baseline). Each client (aiohttp)
sends requests back to back for --seconds. Printed per concurrency and mode: requests (= rows)/s,
p50 / p99 latency, model calls per request (the service's own counters), the batched/unbatched
ratio, and served rows/s as a fraction of in-process ``Artifact`` predictions on the same rows
(one call per row, and one call for all rows, with the model call the service makes). Targets of issue 14: at 64 clients batching gives
>= 5x the rows/s of one call per request; p99 <= 50 ms at 8 clients. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
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


async def load(url: str, token: str, route: str, model: str, rows: np.ndarray, clients: int,
               seconds: float) -> dict:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    width = rows.shape[1]
    if route == "tfaas":
        target = url + "/tfaas/json"
        bodies = [json.dumps({"model": model, "values": r.tolist()}).encode() for r in rows]
    else:
        target = f"{url}/v2/models/{model}/infer"
        bodies = [json.dumps({"inputs": [{"name": "input", "shape": [1, width], "datatype": "FP32",
                                          "data": r.tolist()}]}).encode() for r in rows]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, k: int) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            async with session.post(target, data=bodies[i % len(bodies)], headers=headers) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - start)
            i += clients

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        # one warm-up request per connection
        await asyncio.gather(*(session.post(target, data=bodies[0], headers=headers) for _ in range(clients)))
        begin = time.perf_counter()
        deadline = begin + seconds
        await asyncio.gather(*(client(session, k) for k in range(clients)))
        elapsed = time.perf_counter() - begin
    return {"rows_s": len(latencies) / elapsed, "p50": pct(latencies, 50) * 1e3, "p99": pct(latencies, 99) * 1e3,
            "requests": len(latencies), "errors": errors}


def stats(url: str, token: str, model: str) -> dict:
    import requests

    return requests.get(f"{url}/api/v1/models/{model}", headers={"Authorization": f"Bearer {token}"},
                        timeout=30).json()["stats"] or {"requests": 0, "calls": 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--framework", choices=("torch", "keras"), default="torch")
    parser.add_argument("--route", choices=("tfaas", "v2"), default="tfaas")
    parser.add_argument("--clients", default="1,8,64")
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
        results = {}
        for clients in [int(c) for c in args.clients.split(",")]:
            for mode in ("unbatched", "batched"):
                url = services[mode].url
                before = stats(url, token, "mlp")
                results[clients, mode] = asyncio.run(load(url, token, args.route, "mlp", rows, clients, args.seconds))
                after = stats(url, token, "mlp")
                served = after["requests"] - before["requests"]
                results[clients, mode]["calls_per_request"] = (after["calls"] - before["calls"]) / max(served, 1)
        print()
        head = (f"{'clients':>7} | {'mode':<9} | {'rows/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'calls/req':>9} | "
                f"{'errors':>6} | {'vs per-row':>10} | {'vs one call':>11}")
        print(head)
        print("-" * len(head))
        for (clients, mode), res in results.items():
            print(f"{clients:>7} | {mode:<9} | {res['rows_s']:>8,.0f} | {res['p50']:>7.1f} | {res['p99']:>7.1f} | "
                  f"{res['calls_per_request']:>9.3f} | {res['errors']:>6} | {res['rows_s'] / per_row:>10.2f} | "
                  f"{res['rows_s'] / one_call:>11.4f}")
        print()
        for clients in sorted({c for c, _ in results}):
            ratio = results[clients, "batched"]["rows_s"] / results[clients, "unbatched"]["rows_s"]
            print(f"{clients:>3} clients: batched / one call per request = {ratio:.2f}x rows/s")
        if (64, "batched") in results:
            ratio = results[64, "batched"]["rows_s"] / results[64, "unbatched"]["rows_s"]
            print(f"target at 64 clients >= 5x: {'met' if ratio >= 5 else 'NOT met'} ({ratio:.2f}x)")
        if (8, "batched") in results:
            p99 = results[8, "batched"]["p99"]
            print(f"target p99 <= 50 ms at 8 clients (batched): {'met' if p99 <= 50 else 'NOT met'} ({p99:.1f} ms)")
        print(f"load average after the run: {os.getloadavg()[0]:.1f} (2-core machine shared with other work)")
    finally:
        for svc in services.values():
            svc.stop()
        issuer.close()
    return 0


def _arrays(artifact, path: Path) -> dict:
    import uproot

    with uproot.open(path) as f:
        arrays = f[artifact.tree].arrays(artifact.contract["branches"], entry_stop=3000)
    return {b: arrays[b] for b in arrays.fields}


if __name__ == "__main__":
    sys.exit(main())
