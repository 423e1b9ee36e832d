"""Decision-model benchmark: single-decision latency, batch throughput, training throughput.

    python benchmarks/mlp.py [--quick]

Writes benchmarks/results/mlp.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _server import latency_summary, machine_info, results_path

from learnops.config import MlpConfig
from learnops.contracts import FEATURES
from learnops.io import write_json
from learnops.mlp import predict, predict_batch, train
from learnops.mlp.synthetic import synthetic_decisions


def _percentiles(seconds: list[float]) -> dict[str, float]:
    return latency_summary([t * 1e3 for t in seconds])


def single_latency(model, rows: list[dict], repeats: int) -> dict[str, dict[str, float]]:
    """In-process latency of one decision: numpy fast path (predict) vs a torch forward."""
    for r in rows[:200]:
        predict(model, r)
    np_times = []
    for i in range(repeats):
        row = rows[i % len(rows)]
        t = time.perf_counter()
        predict(model, row)
        np_times.append(time.perf_counter() - t)
    torch_times = []
    net, stats, temp = model.net, model.stats, model.temperature
    with torch.inference_mode():
        for i in range(repeats):
            row = rows[i % len(rows)]
            t = time.perf_counter()
            x = torch.from_numpy(stats.transform(np.array([[row[f] for f in FEATURES]])))
            logits, _ = net(x)
            p = torch.softmax(logits / temp, 1)[0]
            _ = (int(p.argmax()), float(p.max()))
            torch_times.append(time.perf_counter() - t)
    return {"numpy_predict": _percentiles(np_times), "torch_forward": _percentiles(torch_times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller data and fewer epochs")
    args = ap.parse_args()
    results = results_path("mlp", args.quick)
    n_train, epochs = (20_000, 10) if args.quick else (100_000, 50)

    df = synthetic_decisions(n_train, seed=0)
    cfg = MlpConfig(epochs=epochs, patience=epochs)  # no early stop: time every epoch
    t = time.perf_counter()
    result = train(df, cfg, seed=0)
    train_s = time.perf_counter() - t
    n_epochs = int(result.metrics["epochs_run"])
    steps = n_epochs * -(-result.metrics["n_train"] // cfg.batch_size)
    print(f"training: {n_train} decisions × {n_epochs} epochs in {train_s:.1f} s")

    rows = df[list(FEATURES)].head(2000).to_dict("records")
    latency = single_latency(result.model, rows, repeats=2000 if args.quick else 10000)
    print(
        "single decision: numpy p50 {p50_ms:.3f} ms, p99 {p99_ms:.3f} ms".format(
            **latency["numpy_predict"]
        )
    )
    print(
        "single decision: torch p50 {p50_ms:.3f} ms, p99 {p99_ms:.3f} ms".format(
            **latency["torch_forward"]
        )
    )

    batch = df.head(100_000)
    predict_batch(result.model, batch.head(1000))
    t = time.perf_counter()
    predict_batch(result.model, batch)
    batch_s = time.perf_counter() - t
    print(f"batch: {len(batch)} rows in {batch_s:.3f} s ({len(batch) / batch_s:,.0f} rows/s)")

    write_json(
        results,
        {
            "quick": args.quick,
            "machine": machine_info(torch_threads=torch.get_num_threads(), torch=torch.__version__),
            "training": {
                "decisions": n_train,
                "train_rows": result.metrics["n_train"],
                "epochs": n_epochs,
                "batch_size": cfg.batch_size,
                "seconds": train_s,
                "steps_per_second": steps / train_s,
                "us_per_step": 1e6 * train_s / steps,
                "val_accuracy": result.metrics["accuracy"],
                "val_ece": result.metrics["ece"],
            },
            "single_decision": latency,
            "batch": {
                "rows": len(batch),
                "seconds": batch_s,
                "rows_per_second": len(batch) / batch_s,
            },
        },
    )
    print(f"-> {results}")


if __name__ == "__main__":
    main()
