"""IRT engine benchmark: 2PL fit time and peak memory, learnops vs girth.

Run ``python benchmarks/irt.py [--quick]``; writes benchmarks/results/irt.json (``irt.quick.json``
with --quick, git-ignored). Each case runs in its own subprocess so that peak RSS (ru_maxrss)
belongs to that case alone.

``--workers 1,2`` times the 10M-response fit (SEs included) on 1 and 2 worker threads,
``--repeat`` times each, alternating, in one process that has simulated the data and imported
torch (its one-off ~1 s import is recorded apart) (benchmarks/results/irt_parallel.json); the
speed-ups are given on the fastest and on the median fit.
``--dask`` compares the Dask engine (LocalCluster) with the local one at 2M and 10M responses
(irt_dask.json, keeping its ``partitioned`` rows); ``--dask --partitioned`` instead times
the partitioned path (``learnops irt partition``, then workers that read their own partitions)
against the local engine on the same Parquet table, and adds its rows to irt_dask.json under
``partitioned`` (the other rows are kept).

``--se`` instead times the standard errors: the sparse 2PL fit with ``se="none"`` and with the
default (``louis-exact`` above the exact-Hessian budget), plus the same data with repeated
answers; writes benchmarks/results/irt_se.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from _server import machine_info, results_path


def _case(
    engine: str,
    n_learners: int,
    n_items: int,
    per_learner: int | None,
    se: str = "auto",
    workers: int | None = None,
    irt_engine: str = "local",
) -> dict:
    import os

    import numpy as np

    from learnops.irt.sim import simulate

    s = simulate(n_learners, n_items, per_learner, seed=0, string_ids=False)
    truth = s.items
    if se.endswith("+repeats"):  # 30% of the answers repeated once (a fresh 0/1 draw)
        import pandas as pd

        se = se.removesuffix("+repeats")
        again = s.responses.sample(frac=0.3, random_state=1)
        again = again.assign(correct=np.random.default_rng(1).integers(0, 2, len(again)))
        s.responses = pd.concat([s.responses, again], ignore_index=True)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    if engine == "learnops":
        from learnops import irt
        from learnops.irt.parallel import make_engine

        eng = make_engine(irt_engine, workers)
        t0 = time.perf_counter()  # a LocalCluster's start is not part of the fit
        f = irt.fit(s.responses, "2pl", se=se, engine=eng)
        a, b = f.items["discrimination"].to_numpy(), f.items["difficulty"].to_numpy()
        extra = {"iterations": f.iterations, "converged": f.converged,
                 "se_method": f.info.get("se_method"), "workers": eng.workers,
                 "irt_engine": irt_engine, "loglik": f.loglik,
                 "load_average_1min_before": round(load_before, 2)}  # fmt: skip
        if irt_engine == "dask":
            peaks = eng.client.run(_peak_rss_mb)
            extra["worker_peak_rss_mb"] = sorted(round(v, 1) for v in peaks.values())
        eng.close()
    else:
        import girth

        wide = np.zeros((n_items, n_learners), dtype=int)
        r = s.responses
        wide[r["item_id"].to_numpy(), r["learner_id"].to_numpy()] = r["correct"].to_numpy()
        g = girth.twopl_mml(wide)
        a, b = g["Discrimination"], g["Difficulty"]
        extra = {}
    seconds = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime
    return {
        "engine": engine,
        "n_learners": n_learners,
        "n_items": n_items,
        "n_responses": int(len(s.responses)),
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_data_mb": round(rss_data, 1),
        "corr_difficulty": float(np.corrcoef(b, truth["difficulty"])[0, 1]),
        "corr_discrimination": float(np.corrcoef(a, truth["discrimination"])[0, 1]),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        **extra,
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(
    engine: str,
    n_learners: int,
    n_items: int,
    per_learner: int | None,
    timeout: float,
    se: str = "auto",
    workers: int | None = None,
    irt_engine: str = "local",
):
    args = [sys.executable, __file__, "--case", engine, str(n_learners), str(n_items),
            str(per_learner or 0), "--case-se", se, "--case-engine", irt_engine]  # fmt: skip
    if workers:
        args += ["--case-workers", str(workers)]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"engine": engine, "n_learners": n_learners, "n_items": n_items,
                "error": f"timed out after {timeout:.0f} s"}  # fmt: skip
    except subprocess.CalledProcessError as exc:
        return {"engine": engine, "error": exc.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="scaled-down sparse case")
    ap.add_argument("--no-girth", action="store_true")
    ap.add_argument("--se", action="store_true", help="time the standard errors (irt_se.json)")
    ap.add_argument("--case", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--workers", help="compare worker counts, e.g. 1,2 (irt_parallel.json)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per worker count (--workers)")
    ap.add_argument("--dask", action="store_true", help="Dask vs local engine (irt_dask.json)")
    ap.add_argument("--case-se", default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--case-workers", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--case-engine", default="local", help=argparse.SUPPRESS)
    ap.add_argument("--wcase", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--partitioned", action="store_true", help="with --dask: workers read shards")
    ap.add_argument("--pcase", nargs=3, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.wcase:
        nl, ws, rep = ns.wcase
        print(json.dumps(_workers_case(int(nl), [int(w) for w in ws.split(",")], int(rep))))
        return
    if ns.pcase:
        print(json.dumps(_part_case(*ns.pcase)))
        return
    if ns.dask and ns.partitioned:
        _partitioned_benchmark(ns.quick)
        return
    if ns.case:
        engine, nl, ni, per = ns.case
        row = _case(engine, int(nl), int(ni), int(per) or None, ns.case_se, ns.case_workers,
                    ns.case_engine)  # fmt: skip
        print(json.dumps(row))
        return
    if ns.se:
        _se_benchmark(ns.quick)
        return
    if ns.workers:
        _workers_benchmark(ns.quick, [int(w) for w in ns.workers.split(",")], ns.repeat)
        return
    if ns.dask:
        _dask_benchmark(ns.quick)
        return
    sparse = (100_000, 2_000, 10) if ns.quick else (1_000_000, 2_000, 10)
    cases = [("dense_50k_x_100", "learnops", 50_000, 100, None, 600)]
    if not ns.no_girth:
        cases.append(("dense_50k_x_100", "girth", 50_000, 100, None, 1200))
    cases.append((f"sparse_{sparse[0] * sparse[2] // 1_000_000}M", "learnops", *sparse, 1200))
    results = []
    for name, engine, nl, ni, per, timeout in cases:
        row = {"case": name, **_run(engine, nl, ni, per, timeout)}
        print(json.dumps(row), flush=True)
        results.append(row)
    dense = {r["engine"]: r.get("seconds") for r in results if r["case"] == "dense_50k_x_100"}
    summary = {}
    if dense.get("learnops") and dense.get("girth"):
        summary["speedup_vs_girth_dense"] = round(dense["girth"] / dense["learnops"], 1)
    doc = {
        "machine": machine_info(),
        "quick": ns.quick,
        "results": results,
        **summary,
    }
    out = results_path("irt", ns.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"-> {out}")


def _se_benchmark(quick: bool) -> None:
    """Sparse 2PL (2000 items, 10 answers per learner): fit time and memory with and without
    standard errors, and with repeated answers."""
    n_learners = 200_000 if quick else 1_000_000
    results = []
    for se in ("none", "auto", "auto+repeats"):
        row = {"se": se, **_run("learnops", n_learners, 2_000, 10, 3600, se)}
        print(json.dumps(row), flush=True)
        results.append(row)
    doc = {"machine": machine_info(), "quick": quick, "results": results}
    out = results_path("irt_se", quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"-> {out}")


def _write(name: str, quick: bool, results: list[dict], **extra) -> None:
    doc = {"machine": machine_info(), "quick": quick, "results": results, **extra}
    out = results_path(name, quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"-> {out}")


def _workers_case(n_learners: int, workers: list[int], repeat: int) -> dict:
    """In one process: simulate once, import the libraries, then fit ``repeat`` times per
    worker count, alternating (1, 2, 1, 2, ...), so every fit sees the same data, libraries and
    process state; each fit is timed alone (wall and CPU seconds)."""
    import os

    from learnops import irt
    from learnops.irt.parallel import make_engine
    from learnops.irt.sim import simulate

    s = simulate(n_learners, 2_000, 10, seed=0, string_ids=False)
    t0 = time.perf_counter()
    import torch  # noqa: F401  (the fits' one-off import, timed apart)

    torch_import = time.perf_counter() - t0
    fits = []
    for run in range(repeat):
        for w in workers:
            eng = make_engine("local", w)
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            f = irt.fit(s.responses, "2pl", engine=eng)
            seconds = time.perf_counter() - t0
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            eng.close()
            cpu = ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime
            fits.append({"workers": w, "run": run + 1, "seconds": round(seconds, 3),
                         "cpu_seconds": round(cpu, 3), "iterations": f.iterations,
                         "se_method": f.info.get("se_method"), "loglik": f.loglik,
                         "results_sha256": _fit_digest(f),
                         "load_average_1min_after": round(os.getloadavg()[0], 2)})  # fmt: skip
            print(json.dumps(fits[-1]), file=sys.stderr, flush=True)
    return {"n_responses": int(len(s.responses)), "n_learners": n_learners, "n_items": 2_000,
            "torch_import_seconds": round(torch_import, 3), "fits": fits,
            "peak_rss_mb": round(_peak_rss_mb(), 1)}  # fmt: skip


def _fit_digest(f) -> str:
    """SHA-256 of a fit's numbers: every column of its item table (estimates and standard
    errors) and of its abilities, as bytes."""
    import hashlib

    h = hashlib.sha256()
    for table in (f.items, f.abilities):
        for col in table.columns:
            h.update(col.encode())
            values = table[col].to_numpy()
            h.update(
                values.tobytes() if values.dtype != object else "\0".join(map(str, values)).encode()
            )
    return h.hexdigest()


def _workers_benchmark(quick: bool, workers: list[int], repeat: int = 3) -> None:
    """Sparse 2PL with SEs (10M responses; 2M with --quick) on 1, 2, ... worker threads: each
    count fitted ``repeat`` times in one process, alternating (``_workers_case``); the wall
    times, the speed-up over the first count on the fastest and on the median fit (with a
    bootstrap 95% interval), and whether the fits are identical (log-likelihood, iterations,
    and every item estimate, standard error and ability to the bit: ``results_sha256``).
    Alternating in one process gives every worker count the same machine: across fresh
    processes this VM's fit times varied by ±10% (first touches of memory the host had
    reclaimed, huge pages or not), more than the difference being measured."""
    import statistics

    n_learners = 200_000 if quick else 1_000_000
    args = [sys.executable, __file__, "--wcase", str(n_learners),
            ",".join(map(str, workers)), str(repeat)]  # fmt: skip
    out = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=True)
    case = json.loads(out.stdout.strip().splitlines()[-1])
    fits = case.pop("fits")
    times = {w: sorted(f["seconds"] for f in fits if f["workers"] == w) for w in workers}
    base = workers[0]

    def speedups(pick) -> dict[str, float]:
        return {str(w): round(pick(times[base]) / pick(t), 2) for w, t in times.items()}

    summary = {
        **case,
        "seconds": {str(w): t for w, t in times.items()},
        "speedup": speedups(min),
        "speedup_median": speedups(statistics.median),
        "speedup_median_ci95": {
            str(w): _ratio_ci(times[base], t) for w, t in times.items() if w != base
        },
        "identical_loglik": len({f["loglik"] for f in fits}) == 1,
        "identical_iterations": len({f["iterations"] for f in fits}) == 1,
        "identical_results": len({f["results_sha256"] for f in fits}) == 1,
    }
    _write("irt_parallel", quick, fits, **summary)


def _ratio_ci(base: list[float], other: list[float], draws: int = 10_000) -> list[float]:
    """95% percentile-bootstrap interval of median(base) / median(other), the fits of each
    worker count resampled with replacement (seeded: the same interval for the same times)."""
    import numpy as np

    rng = np.random.default_rng(0)
    b, o = np.asarray(base), np.asarray(other)
    ratios = np.median(rng.choice(b, (draws, len(b))), axis=1) / np.median(
        rng.choice(o, (draws, len(o))), axis=1
    )
    return [round(float(v), 3) for v in np.quantile(ratios, [0.025, 0.975])]


def _dask_benchmark(quick: bool) -> None:
    """Sparse 2PL with SEs at 2M and 10M responses (200k and 1M with --quick): the Dask engine
    on a LocalCluster of 2 single-threaded worker processes against the local engine (2
    threads): wall time, driver and per-worker peak RSS, and the 2M → 10M growth."""
    sizes = (20_000, 100_000) if quick else (200_000, 1_000_000)
    results = []
    for nl in sizes:
        for eng in ("local", "dask"):
            row = {"n_learners_case": nl, **_run("learnops", nl, 2_000, 10, 3600, "auto", 2, eng)}
            print(json.dumps(row), flush=True)
            results.append(row)
    growth = {}
    for eng in ("local", "dask"):
        small, big = (next(r for r in results if r.get("irt_engine") == eng
                           and r["n_learners_case"] == nl) for nl in sizes)  # fmt: skip
        if "seconds" in small and "seconds" in big:
            growth[eng] = {
                "time_ratio": round(big["seconds"] / small["seconds"], 2),
                "responses_ratio": big["n_responses"] / small["n_responses"],
            }
    out = results_path("irt_dask", quick)
    kept = json.loads(out.read_text()).get("partitioned") if out.exists() else None
    extra = {"partitioned": kept} if kept else {}  # the --partitioned rows are kept
    _write("irt_dask", quick, results, growth=growth, note=DASK_NOTE, **extra)


#: How the committed irt_dask.json top-level rows were run and what they mean.
DASK_NOTE = (
    "`python benchmarks/irt.py --dask`, each row in its own process. Sparse 2PL with exact SEs, "
    "2,000 items, 10 answers a learner; local = 2 threads, dask = LocalCluster of 2 "
    "single-threaded worker processes (started before the timer). cpu_seconds of the dask rows "
    "are the driver's only; worker_peak_rss_mb is each worker's ru_maxrss. The two engines run "
    "the same shards in the same order: the same log-likelihood and estimates to the bit. Dask "
    "costs more wall time here: pickling and scattering the shards, task round trips per E-step, "
    "and the SE pass's lane accumulators shipped back to the driver."
)


def _part_case(kind: str, directory: str, arg: str) -> dict:
    """One step of the partitioned benchmark, in its own process (its own peak RSS):
    ``simulate`` (arg = learners) writes responses.parquet; ``partition`` writes the dataset;
    ``local`` reads the table and fits it on 2 threads; ``dask`` fits the dataset on a
    LocalCluster of 2 worker processes (started before the timer). Fits save their items and
    abilities for the comparison."""
    import os
    from pathlib import Path

    d = Path(directory)

    def rss() -> float:
        return round(_peak_rss_mb(), 1)

    if kind == "simulate":
        from learnops.irt.sim import simulate

        s = simulate(int(arg), 2_000, 10, seed=0, string_ids=False)
        s.responses.to_parquet(d / "responses.parquet", row_group_size=1 << 20)
        return {"n_responses": len(s.responses)}
    if kind == "partition":
        from learnops.irt.partitioned import partition_responses

        t0 = time.perf_counter()
        summary = partition_responses(d / "responses.parquet", d / "dataset", overwrite=True)
        return {"step": "partition", "seconds": round(time.perf_counter() - t0, 3),
                "peak_rss_mb": rss(), "partitions": summary.partitions}  # fmt: skip
    from learnops import irt
    from learnops.irt.parallel import DaskEngine, LocalEngine

    base = rss()
    load_before = os.getloadavg()[0]
    eng = LocalEngine(2) if kind == "local" else DaskEngine(workers=2)
    import torch  # noqa: F401  (imported by either fit; counted in the baseline)

    base = rss()
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    if kind == "local":
        from learnops.io import read_table

        f = irt.fit(read_table(d / "responses.parquet"), "2pl", engine=eng)
    else:
        f = irt.fit_partitioned(d / "dataset", "2pl", engine=eng)
    seconds = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    row = {
        "step": f"fit_{kind}",
        "seconds": round(seconds, 3),
        "cpu_seconds_driver": round(ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime, 3),
        "driver_peak_rss_mb": rss(),
        "driver_rss_before_fit_mb": base,
        "n_responses": f.n_responses,
        "n_learners": f.n_learners,
        "iterations": f.iterations,
        "converged": f.converged,
        "se_method": f.info["se_method"],
        "loglik": f.loglik,
        "workers": 2,
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    if kind == "dask":
        peaks = eng.client.run(_peak_rss_mb)
        row["worker_peak_rss_mb"] = sorted(round(v, 1) for v in peaks.values())
        row["partitions"] = f.info["partitions"]
        row["loglik_at_local_estimate"] = _loglik_at_local_estimate(d, eng)
    eng.close()
    items = f.items.assign(item_id=f.items["item_id"].astype(str))
    items.to_parquet(d / f"items_{kind}.parquet")
    ab = f.abilities.assign(learner_id=f.abilities["learner_id"].astype(str))
    ab.to_parquet(d / f"abilities_{kind}.parquet")
    return row


def _loglik_at_local_estimate(d, eng) -> float:
    """The partitioned E-step's log-likelihood at the local fit's item parameters (the same
    point: what is left of the difference is the order of the sums), after the timed fit."""
    import pandas as pd

    from learnops.irt.estep import quadrature
    from learnops.irt.partitioned import PartitionedEStep, load_dataset
    from learnops.irt.scoring import item_params

    summary, parts = load_dataset(d / "dataset", eng)
    es = PartitionedEStep(summary, parts, *quadrature(61, 6.0), eng)
    local = pd.read_parquet(d / "items_local.parquet").set_index("item_id")
    p = item_params(local.loc[summary.item_ids].reset_index())
    return float(es.run(p)[0])


def _compare(d) -> dict:
    """Largest differences between the local and the partitioned fit (matched by id)."""
    import numpy as np
    import pandas as pd

    out = {}
    for what, key in (("items", "item_id"), ("abilities", "learner_id")):
        a = pd.read_parquet(d / f"{what}_local.parquet").set_index(key).sort_index()
        b = pd.read_parquet(d / f"{what}_dask.parquet").set_index(key).sort_index()
        assert a.index.equals(b.index)
        for c in a.columns:
            out[f"max_abs_diff_{c}"] = float(np.abs(a[c].to_numpy() - b[c].to_numpy()).max())
    return out


#: How the committed irt_dask.json ``partitioned`` rows were run and what they mean.
PARTITIONED_NOTE = (
    "`python benchmarks/irt.py --dask --partitioned` (load recorded per row). Per size, each "
    "step in its own process: simulate -> "
    "responses.parquet; partition (learnops irt partition, default shards: one per 500k "
    "responses); fit_local = read_table + irt.fit on 2 threads (the driver reads the table); "
    "fit_dask = irt.fit_partitioned on a LocalCluster of 2 single-threaded worker processes "
    "started before the timer (the workers read their partitions). driver_rss_before_fit_mb "
    "is after imports, torch and the cluster start. equality_vs_local: largest differences "
    "between the two fits, matched by item and learner id; the log-likelihoods differ because "
    "EM takes a different number of iterations (the float32 sums over different shards round "
    "differently), within EM's tolerance; abs_diff_loglik_same_params evaluates the partitioned "
    "E-step at the local fit's estimate (after the timed fit, on the same cluster) against the "
    "local fit's log-likelihood."
)


def _partitioned_benchmark(quick: bool) -> None:
    """Sparse 2PL with SEs at 2M and 10M responses (200k and 1M with --quick), from a Parquet
    table: the local engine (the driver reads the table; 2 threads) against workers that read
    their own partitions (LocalCluster, 2 worker processes): wall, driver and worker peak RSS,
    the partition step, and the largest differences between the two fits."""
    import tempfile
    from pathlib import Path

    sizes = (20_000, 100_000) if quick else (200_000, 1_000_000)
    rows = []
    for nl in sizes:
        with tempfile.TemporaryDirectory(prefix="irt_part_bench_") as tmp:
            d = Path(tmp)
            case = {"n_learners_case": nl, "n_items": 2_000}
            steps = [("simulate", str(nl)), ("partition", ""), ("local", ""), ("dask", "")]
            for kind, arg in steps:
                args = [sys.executable, __file__, "--pcase", kind, str(d), arg or "-"]
                out = subprocess.run(args, capture_output=True, text=True, timeout=3600)
                if out.returncode:
                    raise SystemExit(f"{kind}: {out.stderr.strip().splitlines()[-1:]}")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                if kind == "simulate":
                    case.update(res)
                    continue
                row = {**case, **res}
                print(json.dumps(row), flush=True)
                rows.append(row)
            diff = _compare(d)
            local, dask = rows[-2], rows[-1]
            diff["abs_diff_loglik"] = abs(local["loglik"] - dask["loglik"])
            diff["abs_diff_loglik_same_params"] = abs(
                local["loglik"] - dask.pop("loglik_at_local_estimate")
            )
            dask["equality_vs_local"] = diff
            print(json.dumps(diff), flush=True)
    growth = {}
    for step in ("fit_local", "fit_dask", "partition"):
        small, big = (r for r in rows if r["step"] == step)
        peak = "peak_rss_mb" if step == "partition" else "driver_peak_rss_mb"
        growth[step] = {"time_ratio": round(big["seconds"] / small["seconds"], 2),
                        "peak_rss_ratio": round(big[peak] / small[peak], 2),
                        "responses_ratio": big["n_responses"] / small["n_responses"]}  # fmt: skip
    out = results_path("irt_dask", quick)
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc["partitioned"] = {
        "machine": machine_info(),
        "results": rows,
        "growth": growth,
        "note": PARTITIONED_NOTE,
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
