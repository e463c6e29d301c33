"""The engine on a real dask.distributed LocalCluster (2 worker processes): specs, the chunk
stream and a worker killed mid-pass give exactly what one process gives."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import mlaas4hep
from mlaas4hep.datagen import FIGURE4_PREPROC, write_tth
from mlaas4hep.errors import ConfigError
from servers import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def many_ranges(tmp_path_factory) -> dict:
    """Two files of 80k and 60k events in baskets of 10k: eight ranges of the read pass."""
    folder = tmp_path_factory.mktemp("dask")
    sig = write_tth(folder / "signal.root", 80_000, signal=True, seed=11, batch=10_000)
    bkg = write_tth(folder / "background.root", 60_000, signal=False, seed=11, batch=10_000)
    return {"files": [str(sig), str(bkg)], "labels": [1, 0]}


def _dataset(data: dict, dask=None, **params) -> mlaas4hep.Dataset:
    params = {"specs_cache": False, "chunk_size": 2_000, **params}
    return mlaas4hep.Dataset(data["files"], labels=data["labels"], params=params, preproc=FIGURE4_PREPROC, dask=dask)


def _without_key(specs: dict) -> dict:
    return {k: v for k, v in specs.items() if k != "cache_key"}


def test_specs_on_the_cluster_equal_one_process(many_ranges, dask_client):
    with _dataset(many_ranges) as one, _dataset(many_ranges, dask=dask_client) as spread:
        expected, got = one.specs(), spread.specs()
        assert got["events"]["total"] > 10_000  # the cuts keep about a tenth: a real pass, not an empty one
        assert _without_key(got) == _without_key(expected)
        assert got["cache_key"] == expected["cache_key"]
        # both workers took part: ranges ran in both processes
        done = dask_client.run(lambda: sorted(k[0] for k in __import__("mlaas4hep.cluster").cluster._FILES))
        assert len(done) == 2 and all(done.values())
        # each worker decompresses in its one task thread (no pool of the machine's cores) and keeps
        # its files open between tasks, read without a memory map
        how = dask_client.run(_how_files_are_open, many_ranges["files"])
        assert all(v == [("MultithreadedFileSource", None)] for v in how.values()), how


def _how_files_are_open(paths: list[str]) -> list:
    from mlaas4hep.cluster import _FILES

    return sorted({(type(f._file.file.source).__name__, f.decompression_executor)
                   for f in _FILES.values() if f.path in paths and f._file is not None})


def test_worker_open_options():
    from mlaas4hep.cluster import worker_open_options

    file = {"path": "/data/a.root", "open_options": {}, "read_threads": 0}
    options, threads = worker_open_options(file)
    assert threads == 1 and options["handler"].__name__ == "MultithreadedFileSource"
    assert worker_open_options({**file, "read_threads": 4})[1] == 4  # the user's choice stands
    assert "handler" not in worker_open_options({**file, "path": "root://eos//a.root"})[0]
    assert worker_open_options({**file, "open_options": {"handler": int}})[0]["handler"] is int


def _malloc_environment() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}


def test_local_cluster_workers_keep_memory_as_one_process(many_ranges, monkeypatch):
    """Dask's nanny would start the workers with MALLOC_TRIM_THRESHOLD_=65536 (glibc's mmap
    threshold then stays 128 kB, and heap.py leaves such a process alone): the engine's local
    cluster starts them with heap.py's thresholds, unless the user's Dask config names them;
    and its specs are those of one process."""
    import dask
    from distributed import Client

    from mlaas4hep import heap
    from mlaas4hep.cluster import local_cluster

    def fresh_process() -> None:  # a nanny sets the variables in its own process too
        for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
            monkeypatch.delenv(name, raising=False)

    fresh_process()
    cluster = local_cluster(1, silence_logs=logging.ERROR)
    try:
        with Client(cluster) as client:
            (env,) = client.run(_malloc_environment).values()
            (tick,) = client.run(lambda: __import__("dask").config.get("distributed.admin.tick.interval")).values()
            assert tick == "500ms"  # the servers' periodic work less often (cluster.QUIETER)
            with _dataset(many_ranges) as one, _dataset(many_ranges, dask=client) as spread:
                assert _without_key(spread.specs(rows=False)) == _without_key(one.specs(rows=False))
    finally:
        cluster.close()
    assert env == {"MALLOC_MMAP_THRESHOLD_": str(heap.MMAP_THRESHOLD),
                   "MALLOC_TRIM_THRESHOLD_": str(heap.TRIM_THRESHOLD)}
    fresh_process()
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": "1234567"}):
        cluster = local_cluster(1, silence_logs=logging.ERROR)
    try:
        with Client(cluster) as client:
            (env,) = client.run(_malloc_environment).values()
    finally:
        cluster.close()
    assert env == {"MALLOC_TRIM_THRESHOLD_": "1234567"}  # the user's choice stands


def test_specs_of_jagged_nan_and_int_branches(kitchen_sink, dask_client):
    params = {"specs_cache": False}
    with mlaas4hep.Dataset([str(kitchen_sink)], params=params) as one, \
            mlaas4hep.Dataset([str(kitchen_sink)], params=params, dask=dask_client) as spread:
        expected, got = one.specs(), spread.specs()
        assert got["nans"]["x"] > 0 and got["jkeys"]
        assert _without_key(got) == _without_key(expected)


def _chunks(ds: mlaas4hep.Dataset, **kw) -> list:
    return list(ds.iter_chunks(**kw))


def _assert_same_stream(expected: list, got: list) -> None:
    assert len(got) == len(expected) > 3
    for a, b in zip(expected, got):
        assert a.index == b.index
        np.testing.assert_array_equal(b.X, a.X)
        np.testing.assert_array_equal(b.y, a.y)
        np.testing.assert_array_equal(b.file_index, a.file_index)
        np.testing.assert_array_equal(b.entry, a.entry)
        assert b.positions == a.positions


def test_stream_on_the_cluster_equals_one_process(many_ranges, dask_client):
    with _dataset(many_ranges) as one, _dataset(many_ranges, dask=dask_client) as spread:
        expected = _chunks(one, seed=5)
        got = _chunks(spread, seed=5)
        _assert_same_stream(expected, got)
        assert spread.clipped == one.clipped
        # another seed gives another order: the shuffle really happens on the workers
        other = _chunks(_dataset(many_ranges, dask=dask_client), seed=6)
        assert not np.array_equal(other[0].entry, got[0].entry)
        assert sorted(other[0].entry.tolist()) == sorted(got[0].entry.tolist())


def test_stream_from_the_cached_store_and_resumed(many_ranges, dask_client, tmp_path):
    cache = {"cache": True, "cache_dir": str(tmp_path / "shared-cache")}
    with _dataset(many_ranges, **cache) as one:
        expected = _chunks(one, seed=2)
    with _dataset(many_ranges, dask=dask_client, **cache) as spread:
        got = _chunks(spread, seed=2)
        _assert_same_stream(expected, got)
        resumed = list(spread.iter_chunks(seed=2, resume=(3, expected[2].positions)))
    assert [c.index for c in resumed] == [c.index for c in expected[3:]]
    for a, b in zip(expected[3:], resumed):
        np.testing.assert_array_equal(b.X, a.X)
        np.testing.assert_array_equal(b.entry, a.entry)


def test_a_worker_killed_mid_pass(many_ranges, dask_client):
    pids = dask_client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed: list[int] = []

    def progress(path: str, n: int) -> None:
        if not killed:  # after the first range is back: the other ranges are queued or running
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    with _dataset(many_ranges) as one, _dataset(many_ranges, dask=dask_client) as spread:
        expected = one.specs()
        got = spread.specs(progress=progress)
        assert killed == [victim]
        assert _without_key(got) == _without_key(expected)
        _assert_same_stream(_chunks(one, seed=1), _chunks(spread, seed=1))
    dask_client.wait_for_workers(2, timeout=300)
    assert victim not in dask_client.run(os.getpid).values()  # the nanny started a new worker


def test_unreachable_scheduler_is_named(many_ranges):
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConfigError, match="cannot reach the scheduler at tcp://127.0.0.1"):
        _dataset(many_ranges, dask=address).specs()
    assert time.monotonic() - started < 60


def test_a_wrong_dask_value_is_named(many_ranges):
    with pytest.raises(ConfigError, match="expected 'local', a scheduler address"):
        _dataset(many_ranges, dask=42).specs()


def _cli_inputs(data: dict, folder: Path) -> list[str]:
    import json

    (folder / "params.json").write_text(json.dumps({"specs_cache": False, "chunk_size": 2_000}))
    (folder / "preproc.json").write_text(json.dumps(FIGURE4_PREPROC))
    return ["--files", ",".join(data["files"]), "--labels", "1,0", "--params", str(folder / "params.json"),
            "--preproc", str(folder / "preproc.json")]


def test_cli_specs_and_stream_with_dask(many_ranges, dask_client, tmp_path, capsys):
    import json

    from mlaas4hep.cli import main

    inputs = _cli_inputs(many_ranges, tmp_path)
    address = dask_client.scheduler.address
    assert main(["specs", *inputs, "--fout", str(tmp_path / "one.json")]) == 0
    assert main(["specs", *inputs, "--dask", address, "--fout", str(tmp_path / "spread.json")]) == 0
    one = json.loads((tmp_path / "one.json").read_text())
    assert json.loads((tmp_path / "spread.json").read_text()) == one
    capsys.readouterr()
    assert main(["stream", *inputs, "--dask", address, "--save", str(tmp_path / "chunks")]) == 0
    assert f"{one['events']['total']:,} events of {one['events']['total']:,} selected" in capsys.readouterr().out
    with _dataset(many_ranges) as ds:
        for chunk in ds.iter_chunks():
            saved = np.load(tmp_path / "chunks" / f"chunk-{chunk.index:04d}.npz")
            np.testing.assert_array_equal(saved["X"], chunk.X)
            np.testing.assert_array_equal(saved["y"], chunk.y)


def test_cli_names_an_unreachable_scheduler(many_ranges, tmp_path, capsys):
    from mlaas4hep.cli import main

    address = f"tcp://127.0.0.1:{free_port()}"
    assert main(["specs", *_cli_inputs(many_ranges, tmp_path), "--dask", address]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the scheduler at {address}" in err and "Traceback" not in err


def test_workers_that_see_other_files_or_no_store_say_so(many_ranges, dask_client, tmp_path):
    import cloudpickle

    from mlaas4hep import cluster
    from mlaas4hep.errors import DataError

    with _dataset(many_ranges) as ds:
        description = cluster.file_description(ds.files[0], ds.params)
        blob = cloudpickle.dumps(ds.selection)
        plan, layout = ds.plan(), ds.layout
    # the client saw another file at this path (another size): the worker refuses to read it
    description["identity"] = {**description["identity"], "size": 1}
    future = dask_client.submit(cluster.run_range, blob, description, 0, 1000, 1000, None, True, pure=False)
    with pytest.raises(DataError, match="sees another file at this path") as err:
        future.result()
    assert many_ranges["files"][0] in str(err.value) and "tcp://127.0.0.1:" in str(err.value)
    # the row store's folder is not visible on the worker
    missing = str(tmp_path / "not-shared")
    future = dask_client.submit(cluster.build_chunk, missing, "k", plan, layout, [1, 0], True, 0, [], 0,
                                [1, 1], [0, 0], [10, 10], pure=False)
    with pytest.raises(DataError, match="cannot read the row store") as err:
        future.result()
    assert missing in str(err.value) and "cache_dir" in str(err.value)


def test_weighted_stream_with_identifiers_on_the_cluster(many_ranges, dask_client):
    weighted = {"weight": {"expr": "weight * 2", "scale": [0.5, 3.0]}}
    with _dataset(many_ranges, **weighted) as one, _dataset(many_ranges, dask=dask_client, **weighted) as spread:
        expected_specs, got_specs = one.specs(), spread.specs()
        assert got_specs["events"]["weighted"]["total"] > 0
        assert _without_key(got_specs) == _without_key(expected_specs)
        expected = _chunks(one, seed=4, identifiers=True)
        got = _chunks(spread, seed=4, identifiers=True)
        _assert_same_stream(expected, got)
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(b.weight, a.weight)
            assert set(b.identifiers) == set(a.identifiers) == {"run", "event", "luminosityBlock"}
            for name in a.identifiers:
                np.testing.assert_array_equal(b.identifiers[name], a.identifiers[name])


def test_cli_workflow_with_dask_trains_to_an_artifact(many_ranges, dask_client, tmp_path):
    from mlaas4hep.cli import main
    from support import torch_model

    (tmp_path / "model.py").write_text(torch_model())
    inputs = _cli_inputs(many_ranges, tmp_path)
    params = json.loads((tmp_path / "params.json").read_text())
    (tmp_path / "params.json").write_text(json.dumps({**params, "epochs": 1}))
    out = tmp_path / "run"
    assert main(["workflow", *inputs, "--model", str(tmp_path / "model.py"), "--output", str(out),
                 "--dask", dask_client.scheduler.address]) == 0
    contract = json.loads((out / "artifact" / "mlaas4hep.json").read_text())
    assert contract["framework"] == "torch"
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    with _dataset(many_ranges) as ds:
        total = ds.plan().total
    assert [e for e in events if e["event"] == "chunk_done"][-1]["events_processed"] == total


def test_ranges_finishing_out_of_order_are_merged_in_order(many_ranges, dask_client, monkeypatch, tmp_path):
    """The first range of the first file finishes last: the specs (sums of float64 weights, which
    depend on the order of addition) and the stream are still exactly those of one process."""
    from mlaas4hep import cluster

    original = cluster.run_range
    marks = tmp_path / "finished"
    marks.mkdir()
    late = os.path.basename(many_ranges["files"][0])

    def first_range_late(blob, file, start, stop, *rest):  # a closure: shipped by value to the workers
        import os as _os
        import time as _time

        base = _os.path.basename(file["path"])
        if base == late and start == 0:
            _time.sleep(1.5)
        out = original(blob, file, start, stop, *rest)
        (marks / f"{base}-{start}-{_time.monotonic_ns()}").write_text("")
        return out

    # event * 1e-9 gives every weight a full float64 mantissa: their sum changes with the order
    weighted = {"weight": {"expr": "weight * 2 + event * 1e-9", "scale": [0.5, 3.0]}}
    with _dataset(many_ranges, **weighted) as one:
        expected = one.specs()
        expected_stream = _chunks(one, seed=7)
    monkeypatch.setattr(cluster, "run_range", first_range_late)
    with _dataset(many_ranges, dask=dask_client, **weighted) as spread:
        got = spread.specs()
        got_stream = _chunks(spread, seed=7)
    assert _without_key(got) == _without_key(expected)
    _assert_same_stream(expected_stream, got_stream)
    # the ranges did finish out of order: later ranges of the first file before its first one
    done = [p.name.rsplit("-", 2) for p in marks.iterdir()]
    first = min(int(t) for f, a, t in done if f == late and a == "0")
    assert any(int(t) < first for f, a, t in done if f == late and a != "0")


def test_statistics_alone_go_several_ranges_a_task_and_merge_as_in_one_process(many_ranges, dask_client,
                                                                              monkeypatch):
    """A specs pass without rows sends consecutive ranges of a file in one task (fewer, larger
    tasks); each range's statistics are still merged in the pass's order, so order-sensitive
    sums of float64 weights equal one process's."""
    from mlaas4hep import cluster

    weighted = {"weight": {"expr": "weight * 2 + event * 1e-9", "scale": [0.5, 3.0]}}
    with _dataset(many_ranges, **weighted) as one:
        expected = one.specs(rows=False)
    sent = []
    submit = dask_client.submit

    def counting(fn, *args, **kwargs):
        sent.append((fn.__name__, len(args[2]) if fn.__name__ == "run_ranges" else 1))
        return submit(fn, *args, **kwargs)

    monkeypatch.setattr(dask_client, "submit", counting)
    with _dataset(many_ranges, dask=dask_client, **weighted) as spread:
        got = spread.specs(rows=False)
    assert _without_key(got) == _without_key(expected)
    assert got["events"]["weighted"]["total"] > 0
    ranges = sum(n for _, n in sent)
    assert ranges >= 6 and len(sent) < ranges and ("run_ranges", cluster.STATS_RANGES_PER_TASK) in sent


def test_blocks_follow_the_baskets_as_in_one_process(dask_client, tmp_path):
    """Baskets of 3,000 entries: one process reads blocks of 9,000 (whole baskets), and so do the
    workers; with float64 weights, whose sums depend on the blocks, the specs are equal."""
    path = write_tth(tmp_path / "small-baskets.root", 45_000, signal=True, seed=3, batch=3_000)
    data = {"files": [str(path)], "labels": [1]}
    weighted = {"weight": {"expr": "sqrt(event + 0.5)"}}  # its sum here changes with blocks of 10,000
    with _dataset(data, **weighted) as one, _dataset(data, dask=dask_client, **weighted) as spread:
        expected, got = one.specs(rows=False), spread.specs(rows=False)
    assert got["events"]["weighted"]["total"] > 0
    assert _without_key(got) == _without_key(expected)
