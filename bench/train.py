"""Training through the stream vs its two parts, in one run.

    python bench/train.py [--events 150000] [--chunk-size 20000] [--epochs 2] [--model examples/keras_model.py]

1. stream alone: every chunk of ``Dataset.chunks()``, nothing done with it;
2. fit in memory: the same chunks, collected beforehand, each fitted as training does (same
   held-out rows, epochs, batch size) on a fresh model;
3. training through the stream: ``mlaas4hep.train``; its training loop is timed from the first
   ``chunk_start`` event to the last ``chunk_done`` (a checkpoint after every chunk included), and
   the whole call is shown too (model build, test metrics and the artifact export on top).

The next chunk is read and tensorized while the current one trains, so (3) should be close to
the larger of (1) and (2): the target is <= 1.2x max(1, 2), and never more than (1) + (2).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import PREPROC, ensure_file, machine  # noqa: E402

import mlaas4hep  # noqa: E402
from mlaas4hep.adapters import make_adapter  # noqa: E402
from mlaas4hep.train import split_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150_000, help="events per file (two files)")
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--model", default=str(Path(__file__).parents[1] / "examples" / "keras_model.py"))
    args = parser.parse_args()

    k = args.events // 1000
    files = [str(ensure_file(f"train-{k}k-sig.root", args.events, seed=11, signal=True)),
             str(ensure_file(f"train-{k}k-bkg.root", args.events, seed=11, signal=False))]
    params = {"chunk_size": args.chunk_size, "epochs": args.epochs, "batch_size": args.batch_size,
              "identifier": ["run", "event", "luminosityBlock"]}
    ds = mlaas4hep.Dataset(files, labels=["1", "0"], params=params, preproc=PREPROC)
    specs = ds.specs()
    plan = ds.plan()
    print(f"machine: {machine()}")
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        print(f"accelerator: {', '.join(g.name for g in gpus) if gpus else 'none (CPU)'}")
    except ImportError:
        pass
    print(f"data: 2 files x {args.events:,} events, {specs['events']['total']:,} pass the cuts, "
          f"{len(ds.feature_names)} features, {plan.n_chunks} chunks of {args.chunk_size:,}; "
          f"model {args.model}, {args.epochs} epochs per chunk, batch {args.batch_size}\n")

    # 1. the stream alone
    start = time.perf_counter()
    held = []
    for chunk in ds.iter_chunks():
        held.append(chunk)
    # (collecting keeps the chunks; the stream is timed before any training)
    t_stream = time.perf_counter() - start
    held = [(c.X.copy(), c.y.copy(), split_rows(c, ds.params.test_fraction, ds.params.validation_split,
                                                  ds.params.seed)) for c in held]

    # 2. fit on the same chunks, in memory
    adapter = make_adapter(args.model, len(ds.feature_names), 2, seed=0)
    start = time.perf_counter()
    for X, y, rows in held:
        adapter.fit(X[rows.train], y[rows.train], epochs=args.epochs, batch_size=args.batch_size,
                    validation=(X[rows.val], y[rows.val]))
    t_fit = time.perf_counter() - start
    del held

    # 3. training through the stream
    events = []
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        artifact = mlaas4hep.train(ds, args.model, output=out, on_event=events.append)
        t_call = time.perf_counter() - start
    first = next(e["time"] for e in events if e["event"] == "chunk_start")
    last = [e["time"] for e in events if e["event"] == "chunk_done"][-1]
    t_train = last - first

    bigger = max(t_stream, t_fit)
    print(f"{'(1) stream alone':36s} {t_stream:7.2f}s  {specs['events']['total'] / t_stream / 1e3:8.1f} k events/s")
    print(f"{'(2) fit on the same data in memory':36s} {t_fit:7.2f}s")
    print(f"{'(3) training through the stream':36s} {t_train:7.2f}s  (whole train() call {t_call:.2f}s)")
    print(f"\n(3) / max(1, 2) = {t_train / bigger:.2f}   (target <= 1.2)")
    print(f"(3) / ((1) + (2)) = {t_train / (t_stream + t_fit):.2f}   (must be <= 1.0)")
    print("test metrics: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in artifact.metrics.items()))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
