"""The service under load, on loopback: 50 clients submit and poll, then a restart mid-run.

    python bench/service.py [--clients 50] [--seconds 15] [--concurrency 1]

A real OIDC issuer (tests/oidc, npm oauth2-mock-server) and ``mlaas4hep serve`` run as their own
processes on 127.0.0.1. Each client is its own user (a client-credentials token), uploads a
small tar.gz of inputs (two 300-event ROOT files, model.py), submits one small training job
through the jobs API and then polls ``GET /api/v1/jobs/{id}`` (and every 10th time its events):
first with 20 ms between a client's calls (a stress: the clients ask as fast as the server
answers), then every 250 ms. The baseline is one client polling alone, in the same run.
Printed: requests/s, p50 / p99 latency of the status calls (baseline vs 50 clients, and the
ratio), submissions accepted and lost. Then, with jobs still queued and running, the service is
restarted: every accepted job must still be there, with at least the events seen before the
restart, and the jobs go on to finish. Prints figures; asserts nothing (the exit status is 1
when a job was lost).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import OIDCIssuer, ServiceProcess  # noqa: E402

from common import machine  # noqa: E402

PARAMS = {"chunk_size": 200, "epochs": 1, "batch_size": 64, "identifier": "run,event,luminosityBlock"}
MODEL = """from torch import nn


def model(idim):
    return nn.Sequential(nn.Linear(idim, 8), nn.ReLU(), nn.Linear(8, 1))
"""


def make_inputs(folder: Path) -> bytes:
    from mlaas4hep.datagen import write_tth

    inputs = folder / "inputs"
    inputs.mkdir()
    write_tth(inputs / "sig.root", 300, signal=True, seed=1)
    write_tth(inputs / "bkg.root", 300, signal=False, seed=1)
    (inputs / "model.py").write_text(MODEL)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(inputs, arcname="inputs")
    return buffer.getvalue()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str):
        self.session = session
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.job: str | None = None
        self.latencies: list[float] = []
        self.errors: list[str] = []

    async def prepare(self, archive: bytes) -> None:
        form = aiohttp.FormData()
        form.add_field("file", archive, filename="inputs.tar.gz", content_type="application/gzip")
        async with self.session.post(self.url + "/api/v1/uploads", data=form, headers=self.headers) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"upload: {r.status} {body}")
        self.base = f"{body['path']}/inputs"

    async def submit(self) -> None:
        request = {"files": [f"{self.base}/sig.root", f"{self.base}/bkg.root"], "labels": [1, 0],
                   "model_path": f"{self.base}/model.py", "params": PARAMS,
                   "resources": {"threads": 1}}  # one core stays free for the API on a 2-core machine
        async with self.session.post(self.url + "/api/v1/jobs", json=request, headers=self.headers) as r:
            body = await r.json()
            if r.status == 201:
                self.job = body["id"]
            else:
                self.errors.append(f"submit {r.status}: {body}")

    async def poll(self, until: float, limit: int, interval: float = 0.02) -> None:
        n = 0
        while time.monotonic() < until and n < limit:
            n += 1
            start = time.perf_counter()
            async with self.session.get(f"{self.url}/api/v1/jobs/{self.job}", headers=self.headers) as r:
                await r.read()
                if r.status != 200:
                    self.errors.append(f"status {r.status}")
            self.latencies.append(time.perf_counter() - start)
            if n % 10 == 0:
                async with self.session.get(f"{self.url}/api/v1/jobs/{self.job}/events",
                                            params={"timeout": "0"}, headers=self.headers) as r:
                    await r.read()
            await asyncio.sleep(interval)


async def events_of(session, url, headers, job) -> tuple[str, list[dict]]:
    async with session.get(f"{url}/api/v1/jobs/{job}/events", params={"timeout": "0"}, headers=headers) as r:
        if r.status != 200:
            return f"HTTP {r.status}", []
        body = await r.json()
        return body["status"], body["events"]


async def run(args: argparse.Namespace, issuer: OIDCIssuer, service: ServiceProcess, archive: bytes) -> int:
    connector = aiohttp.TCPConnector(limit=args.clients + 10)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tokens = [issuer.token(f"user{i:02d}") for i in range(args.clients)]
        clients = [Client(session, service.url, t) for t in tokens]
        await asyncio.gather(*(c.prepare(archive) for c in clients))

        # baseline: one client alone
        alone = clients[0]
        await alone.submit()
        await alone.poll(time.monotonic() + args.baseline_seconds, 10_000)
        baseline = list(alone.latencies)
        alone.latencies.clear()

        # 50 clients: submit at once, then poll: first as fast as they can (20 ms between a
        # client's calls: a stress), then paced (every 250 ms, still faster than a sidebar polls)
        start = time.perf_counter()
        await asyncio.gather(*(c.submit() for c in clients[1:]))
        submit_time = time.perf_counter() - start
        accepted = [c for c in clients if c.job]
        phases = {}
        for name, interval in (("stress", 0.02), ("paced", 0.25)):
            for c in accepted:
                c.latencies = []
            start = time.perf_counter()
            until = time.monotonic() + args.seconds
            await asyncio.gather(*(c.poll(until, 100_000, interval) for c in accepted))
            phases[name] = (interval, time.perf_counter() - start, [x for c in accepted for x in c.latencies])
        errors = [e for c in clients for e in c.errors]

        load = os.getloadavg()[0]
        print(f"\n{machine()}, load average {load:.1f} at the end; {args.clients} clients, {args.seconds:g} s of "
              f"polling per phase, job concurrency {args.concurrency}")
        print(f"submissions: {len(accepted)}/{args.clients} accepted in {submit_time:.2f} s; errors: {len(errors)}")
        for e in errors[:5]:
            print(f"  {e}")
        base_rate = len(baseline) / args.baseline_seconds
        print(f"\nGET /api/v1/jobs/{{id}}                  {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'p99 / baseline':>15}")
        print(f"  1 client, every 20 ms (baseline)    {len(baseline):>9} {base_rate:>8.0f} "
              f"{1000 * pct(baseline, 50):>8.2f} {1000 * pct(baseline, 99):>8.2f} {1.0:>15.1f}")
        for name, (interval, elapsed, loaded) in phases.items():
            print(f"  {len(accepted)} clients, every {1000 * interval:>3.0f} ms ({name})  {len(loaded):>9} "
                  f"{len(loaded) / elapsed:>8.0f} {1000 * pct(loaded, 50):>8.2f} {1000 * pct(loaded, 99):>8.2f} "
                  f"{pct(loaded, 99) / pct(baseline, 99):>15.1f}")
        for name, (_, _, loaded) in phases.items():
            print(f"  target p99 <= 50 ms under {args.clients} clients ({name}): "
                  f"{'met' if 1000 * pct(loaded, 99) <= 50 else 'NOT met'}")

        # restart mid-run: every accepted job is still there, with its events
        before = {c.job: await events_of(session, service.url, c.headers, c.job) for c in accepted}
        states = sorted(s for s, _ in before.values())
        print("\nbefore the restart: " + ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states))))
        start = time.perf_counter()
        service.restart()
        print(f"restart: {time.perf_counter() - start:.1f} s until /health answers again")
        lost = []
        for c in accepted:
            status, events = await events_of(session, service.url, c.headers, c.job)
            seen = before[c.job][1]
            if status.startswith("HTTP") or [e["seq"] for e in events[: len(seen)]] != [e["seq"] for e in seen]:
                lost.append((c.job, status, len(seen), len(events)))
        print(f"after the restart: {len(accepted) - len(lost)}/{len(accepted)} jobs there with their events; "
              f"lost: {len(lost)}")
        for item in lost[:5]:
            print(f"  lost {item}")

        # the jobs go on: wait (bounded) for those that were running or queued
        deadline = time.monotonic() + args.finish_seconds
        finished: dict[str, str] = {}
        while time.monotonic() < deadline and len(finished) < len(accepted):
            for c in accepted:
                if c.job not in finished:
                    status, _ = await events_of(session, service.url, c.headers, c.job)
                    if status in ("succeeded", "failed", "cancelled"):
                        finished[c.job] = status
            await asyncio.sleep(1)
        done = sorted(finished.values())
        print(f"{args.finish_seconds:g} s after the restart: " + (", ".join(
            f"{done.count(s)} {s}" for s in sorted(set(done))) or "none finished") +
              f", {len(accepted) - len(finished)} still queued or running (cancelled now)")
        for c in accepted:
            if c.job not in finished:
                async with session.post(f"{service.url}/api/v1/jobs/{c.job}/cancel", headers=c.headers) as r:
                    await r.read()
        return 1 if lost or len(accepted) + len([e for e in errors if e.startswith("submit")]) != args.clients else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0, help="polling time of each loaded phase (default 15)")
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--finish-seconds", type=float, default=60.0,
                        help="how long to wait for the jobs after the restart (default 60)")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs running at once (default 1)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlaas4hep-bench-service-") as tmp:
        archive = make_inputs(Path(tmp))
        issuer = OIDCIssuer()
        try:
            service = ServiceProcess(issuer.url, Path(tmp) / "data", concurrency=args.concurrency,
                                     max_active_jobs=5)
            try:
                return asyncio.run(run(args, issuer, service, archive))
            finally:
                service.stop()
        finally:
            issuer.close()


if __name__ == "__main__":
    sys.exit(main())
