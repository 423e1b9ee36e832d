"""What the operations dashboard (``GET /dashboard``) shows, as one JSON document.

:func:`dashboard_payload` reads the event store (shared by every server process, so the page
shows the whole service, not one worker) and the server's own state:

- decisions per time bucket by ``decided_by`` and by experiment arm, the ML usage share and
  latency p50/p95/p99 per bucket, over the last ``window`` minutes (at most
  :data:`MAX_ROWS` most recent decisions);
- outcome metrics (next accuracy, next engagement) by arm with 95% confidence intervals, the
  learner being the unit (mean of the learners' means, Student-t interval over learners), over
  the running experiment, or the window when none runs;
- the running experiment: arms, planned shares, learners, decisions, outcomes, the SRM test on
  learners, and the sequential (anytime-valid) comparisons of its last analysis, recomputed
  in the background at most every :data:`ANALYSIS_INTERVAL_S` seconds;
- the served drift test (``learnops.serve.drift``): per feature p-values and verdict;
- the active alerts: those stored in the last day (``MonitoringMetric`` rows with
  ``alert``) and the live threshold checks of the window (params ``evaluate.targets``,
  ``serve.max_error_rate``, the drift verdict, the production model's held-out accuracy);
- the production model versions with their deploy times, and recent deploys.

Learner ids never leave this module: learner hashes are only grouped by, never returned.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from learnops.contracts import DEFAULT_ARM

__all__ = [
    "ANALYSIS_INTERVAL_S",
    "MAX_ROWS",
    "DashboardCache",
    "arm_outcomes",
    "dashboard_payload",
    "extra_metric_lines",
    "learner_ci",
]

log = logging.getLogger("learnops.serve")

#: The most recent decisions read for the time series (older ones in the window are left out).
MAX_ROWS = 50_000
#: Buckets of the time series (the window is cut into this many).
N_BUCKETS = 30
#: Minimum seconds between two analyses of the running experiment (they read all its rows).
ANALYSIS_INTERVAL_S = 30.0
#: Seconds a computed payload is reused (several open pages cost one computation).
PAYLOAD_TTL_S = 1.0
#: Stored alerts younger than this are shown.
STORED_ALERT_AGE = timedelta(days=1)
#: Fewest decisions in the window before the live usage and latency checks can alert.
MIN_DECISIONS = 30
#: The two outcome metrics shown by arm: (payload name, decision column).
OUTCOMES = (("accuracy", "next_accuracy"), ("engagement", "next_engagement"))


def _iso(ts: Any) -> str | None:
    if ts is None:
        return None
    if hasattr(ts, "isoformat"):
        return ts.isoformat()
    return str(ts)


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def learner_ci(learner_means: Any, level: float = 0.95) -> dict[str, float | int | None]:
    """Mean of the learners' means and its Student-t confidence interval over learners
    (``ciLow``/``ciHigh`` None with fewer than two learners)."""
    import numpy as np
    from scipy import stats

    x = np.asarray(learner_means, dtype=float)
    x = x[np.isfinite(x)]
    n = int(len(x))
    if n == 0:
        return {"mean": None, "ciLow": None, "ciHigh": None, "learners": 0}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "ciLow": None, "ciHigh": None, "learners": n}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "ciLow": mean - half, "ciHigh": mean + half, "learners": n}


def arm_outcomes(store: Any, experiment: str | None, since: datetime | None) -> list[dict]:
    """Outcome metrics by arm: one grouped query (arm, learner) → learner means → the arm's
    mean and CI over learners. ``experiment``: its decisions; else those since ``since``
    (decisions outside an experiment form the default arm)."""
    from sqlalchemy import Integer, cast, func, select

    from learnops.data.store import Decision

    t = Decision.__table__
    cols = [t.c.ab_group, t.c.learner_hash, func.count()]
    for _, col in OUTCOMES:
        cols += [func.avg(t.c[col]), func.count(t.c[col])]
    cols.append(func.count(cast(t.c.session_completed, Integer)))
    stmt = select(*cols).group_by(t.c.ab_group, t.c.learner_hash)
    if experiment is not None:
        stmt = stmt.where(t.c.ab_test == experiment)
    elif since is not None:
        stmt = stmt.where(t.c.timestamp >= since)
    per_arm: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for row in conn.execute(stmt):
            arm = str(row[0]) if row[0] is not None else DEFAULT_ARM
            d = per_arm.setdefault(arm, {"decisions": 0, "learners": 0, "means": {}})
            d["decisions"] += int(row[2])
            d["learners"] += 1
            for i, (name, _) in enumerate(OUTCOMES):
                mean, count = row[3 + 2 * i], row[4 + 2 * i]
                if count:
                    d["means"].setdefault(name, []).append(float(mean))
    out = []
    for arm in sorted(per_arm):
        d = per_arm[arm]
        out.append(
            {
                "arm": arm,
                "decisions": d["decisions"],
                "learners": d["learners"],
                "metrics": {name: learner_ci(d["means"].get(name, [])) for name, _ in OUTCOMES},
            }
        )
    return out


def _recent(store: Any, since: datetime) -> Any:
    """(timestamp, decided_by, ab_group, latency_ms) of the decisions since ``since`` (the
    :data:`MAX_ROWS` most recent) as a DataFrame."""
    import numpy as np
    import pandas as pd
    from sqlalchemy import String, cast, select

    from learnops.data.store import Decision

    t = Decision.__table__
    # the timestamp as the database's text, parsed once by pandas (not row by row)
    stmt = (
        select(cast(t.c.timestamp, String), t.c.decided_by, t.c.ab_group, t.c.latency_ms)
        .where(t.c.timestamp >= since)
        .order_by(t.c.timestamp.desc())
        .limit(MAX_ROWS)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cols = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]  # columns: fast
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                pd.Series(cols[0], dtype=object), utc=True, format="ISO8601"
            ),
            "decided_by": pd.Series(cols[1], dtype=object),
            "ab_group": pd.Series(cols[2], dtype=object),
            "latency_ms": np.asarray(cols[3], dtype=float),
        }
    )


def time_series(df: Any, now: datetime, window_min: float) -> dict[str, Any]:
    """Per bucket: decisions per minute by decider and by arm, ML share, latency quantiles."""
    import numpy as np
    import pandas as pd

    step = window_min * 60.0 / N_BUCKETS
    end = pd.Timestamp(now)
    start = end - pd.Timedelta(seconds=window_min * 60.0)
    edges = [start + pd.Timedelta(seconds=step * i) for i in range(N_BUCKETS)]
    if len(df):
        idx = ((df["timestamp"] - start).dt.total_seconds() // step).astype(int)
        idx = idx.clip(0, N_BUCKETS - 1)
    else:
        idx = pd.Series([], dtype=int)
    per_min = 60.0 / step

    def counts(key: Any) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        if not len(df):
            return out
        for name, g in idx.groupby(key.fillna(DEFAULT_ARM).astype(str)):
            c = np.bincount(g.to_numpy(), minlength=N_BUCKETS)
            out[str(name)] = [round(float(v) * per_min, 3) for v in c]
        return dict(sorted(out.items()))

    total = np.bincount(idx.to_numpy(), minlength=N_BUCKETS) if len(df) else np.zeros(N_BUCKETS)
    ml = (
        np.bincount(idx[df["decided_by"] == "ml"].to_numpy(), minlength=N_BUCKETS)
        if len(df)
        else np.zeros(N_BUCKETS)
    )
    usage = [float(m / n) if n else None for m, n in zip(ml, total, strict=True)]
    quant: dict[str, list[float | None]] = {"p50": [], "p95": [], "p99": []}
    lat = df["latency_ms"].to_numpy(dtype=float) if len(df) else np.zeros(0)
    ii = idx.to_numpy() if len(df) else np.zeros(0, dtype=int)
    for b in range(N_BUCKETS):
        v = lat[(ii == b) & np.isfinite(lat)]
        for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            quant[key].append(float(np.quantile(v, q)) if len(v) else None)
    finite = lat[np.isfinite(lat)]
    return {
        "buckets": [e.isoformat() for e in edges],
        "bucketSeconds": step,
        "decisions": {
            "total": int(len(df)),
            "perMinute": float(len(df) / window_min),
            "lastMinute": int((df["timestamp"] >= end - pd.Timedelta(minutes=1)).sum())
            if len(df)
            else 0,
            "byDecider": counts(df["decided_by"]) if len(df) else {},
            "byArm": counts(df["ab_group"]) if len(df) else {},
        },
        "mlUsage": {
            "values": usage,
            "overall": float(ml.sum() / total.sum()) if total.sum() else None,
        },
        "latency": {
            **quant,
            "overall": {
                k: float(np.quantile(finite, q)) if len(finite) else None
                for q, k in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
            },
        },
    }


def _stored_alerts(store: Any, now: datetime) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from learnops.data.store import MonitoringMetric

    recent = MonitoringMetric.timestamp >= now - STORED_ALERT_AGE
    stmt = (
        select(MonitoringMetric)
        .where(MonitoringMetric.alert.is_(True), recent)
        .order_by(MonitoringMetric.timestamp.desc())
        .limit(20)
    )
    out = []
    with store.session() as s:
        for r in s.scalars(stmt):
            labels = r.labels or {}
            out.append(
                {
                    "source": "stored",
                    "metric": r.metric,
                    "value": _finite(r.value),
                    "threshold": _finite(labels.get("threshold")),
                    "feature": labels.get("feature"),
                    "message": r.message or r.metric,
                    "modelVersion": r.model_version,
                    "at": _iso(r.timestamp),
                }
            )
    return out


def live_alerts(
    series: dict[str, Any],
    drift: dict[str, Any],
    errors: dict[str, Any],
    targets: dict,
    models: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Threshold checks of the window: ML usage, latency p95, drift verdict, error rate, and
    the production model's held-out accuracy (the rules of deploy/prometheus/alerts.yml)."""
    out: list[dict[str, Any]] = []
    for m in (models or {}).get("production", []):
        acc = m.get("accuracy")
        if m.get("model") == "mlp" and acc is not None and acc < targets["accuracy"]:
            out.append(
                {
                    "metric": "model_accuracy",
                    "value": acc,
                    "threshold": targets["accuracy"],
                    "message": f"production mlp {m['version']} has a held-out accuracy of "
                    f"{acc:.1%}, below the target {targets['accuracy']:.0%}",
                }
            )
    n = series["decisions"]["total"]
    usage = series["mlUsage"]["overall"]
    p95 = series["latency"]["overall"]["p95"]
    if n >= MIN_DECISIONS and usage is not None and usage < targets["mlUsage"]:
        out.append(
            {
                "metric": "ml_usage",
                "value": usage,
                "threshold": targets["mlUsage"],
                "message": f"ML usage {usage:.1%} is below the target "
                f"{targets['mlUsage']:.0%} ({n} decisions in the window)",
            }
        )
    if n >= MIN_DECISIONS and p95 is not None and p95 > targets["latencyMs"]:
        out.append(
            {
                "metric": "latency_p95_ms",
                "value": p95,
                "threshold": targets["latencyMs"],
                "message": f"decision latency p95 {p95:.1f} ms exceeds {targets['latencyMs']:g} ms",
            }
        )
    if drift.get("status") == "drift":
        names = [f["feature"] for f in drift["features"] if f["drifted"]]
        out.append(
            {
                "metric": "dataset_drift",
                "value": 1.0,
                "threshold": drift.get("alpha"),
                "message": f"live traffic drifted from the training data in {len(names)} "
                f"feature(s): {', '.join(names)}",
            }
        )
    rate = errors.get("rate")
    if rate is not None and errors["decisions"] >= MIN_DECISIONS and rate > targets["errorRate"]:
        out.append(
            {
                "metric": "error_rate",
                "value": rate,
                "threshold": targets["errorRate"],
                "message": f"{rate:.1%} of decisions failed (target at most "
                f"{targets['errorRate']:.0%})",
            }
        )
    return [{"source": "live", "at": None, "feature": None, "modelVersion": None, **a} for a in out]


def drift_section(state: Any) -> dict[str, Any]:
    """The served drift test: status, window, per feature p-values and verdict."""
    watch = getattr(state, "drift", None)
    cfg = state.params.monitor
    out: dict[str, Any] = {
        "status": "off",
        "alpha": cfg.alpha,
        "correction": cfg.correction,
        "window": cfg.serve_window,
        "intervalSeconds": cfg.serve_interval_s,
        "nCurrent": 0,
        "testedAt": None,
        "features": [],
    }
    if watch is None:
        return out
    out["status"] = str(watch.status)
    out["nCurrent"] = int(watch.n_current)
    out["testedAt"] = _iso(getattr(watch, "tested_at", None))
    result = getattr(watch, "result", None)
    if result is not None:
        for r in result.features.itertuples(index=False):
            out["features"].append(
                {
                    "feature": str(r.feature),
                    "pValue": _finite(r.p_value),
                    "pAdjusted": _finite(r.p_adjusted),
                    "psi": _finite(r.psi),
                    "ks": _finite(r.statistic),
                    "drifted": bool(r.drifted),
                }
            )
    else:
        for feature, p, drifted in watch.gauges:
            out["features"].append(
                {
                    "feature": feature,
                    "pValue": _finite(p),
                    "pAdjusted": None,
                    "psi": None,
                    "ks": None,
                    "drifted": bool(drifted),
                }  # fmt: skip
            )
    return out


def models_section(state: Any) -> dict[str, Any]:
    """Production version of each model type and the most recent deploys."""
    from learnops.lifecycle.registry import MODEL_TYPES

    def view(v: Any) -> dict[str, Any]:
        metrics = v.metrics or {}
        return {
            "model": v.model_type,
            "version": v.version,
            "status": v.status,
            "deployedAt": _iso(v.deployed_at),
            "createdAt": _iso(v.created_at),
            "dataCount": v.data_count,
            "accuracy": _finite(metrics.get("accuracy")),
        }

    production = []
    for t in MODEL_TYPES:
        v = state.registry.production(t)
        production.append(view(v) if v else {"model": t, "version": None})
    history = [v for v in state.registry.list() if v.deployed_at is not None]
    history.sort(key=lambda v: v.deployed_at, reverse=True)
    return {
        "serving": state.holder.version,
        "fallback": state.teacher_name,
        "training": bool(state.is_training()),
        "production": production,
        "deploys": [view(v) for v in history[:8]],
    }


class DashboardCache:
    """The last payload (reused for :data:`PAYLOAD_TTL_S`) and the last analysis of the running
    experiment (recomputed in a daemon thread at most every :data:`ANALYSIS_INTERVAL_S`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.payloads: dict[float, tuple[float, dict[str, Any]]] = {}
        self.analysis: dict[str, Any] = {}
        self._analysing = threading.Lock()
        self._analysed: tuple[str, float] | None = None

    def experiment_analysis(self, state: Any, exp: Any) -> dict[str, Any] | None:
        """The last analysis of ``exp`` (None before the first one); starts the next one in the
        background when due."""
        last = self._analysed
        due = (
            last is None
            or last[0] != exp.name
            or time.monotonic() - last[1] >= (ANALYSIS_INTERVAL_S)
        )
        if due and self._analysing.acquire(blocking=False):
            self._analysed = (exp.name, time.monotonic())
            threading.Thread(
                target=self._analyse, args=(state, exp), name="dashboard-analysis", daemon=True
            ).start()
        got = self.analysis.get(exp.name)
        return got

    def _analyse(self, state: Any, exp: Any) -> None:
        try:
            from learnops.ab.experiments import analyze_experiment

            decisions = state.store.read_decisions(ab_test=exp.name)
            results, _ = analyze_experiment(exp, decisions, state.params)
            self.analysis[exp.name] = summarize_analysis(results)
        except Exception as exc:  # the dashboard shows the last good analysis
            log.warning("dashboard: experiment analysis failed: %s", type(exc).__name__)
        finally:
            self._analysing.release()


def summarize_analysis(results: dict[str, Any]) -> dict[str, Any]:
    """The parts of an analysis the dashboard shows: method, decision, the comparisons."""
    from learnops.data.store import utcnow

    comps = []
    for c in results.get("comparisons") or []:
        comps.append(
            {
                "metric": c.get("metric"),
                "treatment": c.get("treatment"),
                "control": c.get("control"),
                "diff": _finite(c.get("diff")),
                "ciLow": _finite(c.get("ci_low")),
                "ciHigh": _finite(c.get("ci_high")),
                "pValue": _finite(c.get("p_adjusted", c.get("p_value"))),
                "significant": bool(c.get("significant")),
            }
        )
    return {
        "at": utcnow().isoformat(),
        "method": results.get("method"),
        "correction": results.get("correction"),
        "decision": results.get("decision"),
        "winner": results.get("winner"),
        "comparisons": comps,
    }


def experiment_section(state: Any, cache: DashboardCache) -> dict[str, Any] | None:
    """The running experiment (None when none runs): arms, counts, SRM, last analysis."""
    from learnops.ab.experiments import arm_counts
    from learnops.ab.stats import srm_test

    exp = state.experiments.current()
    if exp is None:
        return None
    counts = arm_counts(state.store, [exp.name]).get(exp.name, {})
    arms = []
    for arm, share in exp.arms.items():
        c = counts.get(arm, {})
        arms.append(
            {
                "arm": arm,
                "share": share,
                "learners": int(c.get("learners", 0)),
                "decisions": int(c.get("decisions", 0)),
                "withOutcome": int(c.get("withOutcome", 0)),
            }
        )
    observed = {a["arm"]: a["learners"] for a in arms}
    srm = srm_test(observed, exp.arms)
    return {
        "name": exp.name,
        "startedAt": _iso(exp.started_at),
        "control": exp.control,
        "minSampleSize": exp.min_sample_size,
        "arms": arms,
        "srm": {
            "pValue": _finite(srm["p_value"]),
            "chi2": _finite(srm["chi2"]),
            "mismatch": bool(srm["mismatch"]),
            "threshold": srm["threshold"],
        },
        "analysis": cache.experiment_analysis(state, exp),
    }


def targets_of(params: Any) -> dict[str, float]:
    """The thresholds the page draws and the live alerts use (params.yaml)."""
    t = params.evaluate.targets
    return {
        "mlUsage": float(t.ml_usage),
        "latencyMs": float(t.latency_ms),
        "accuracy": float(t.accuracy),
        "driftAlpha": float(params.monitor.alpha),
        "errorRate": float(params.serve.max_error_rate),
    }


def dashboard_payload(
    state: Any, cache: DashboardCache | None = None, window_min: float = 30.0
) -> dict[str, Any]:
    """The dashboard's JSON document (see the module docstring); no learner ids."""
    from learnops.data.store import utcnow

    cache = cache or DashboardCache()
    with cache.lock:
        hit = cache.payloads.get(window_min)
        if hit is not None and time.monotonic() - hit[0] < PAYLOAD_TTL_S:
            return hit[1]
    now = utcnow()
    since = now - timedelta(minutes=window_min)
    targets = targets_of(state.params)
    series = time_series(_recent(state.store, since), now, window_min)
    exp = experiment_section(state, cache)
    drift = drift_section(state)
    m = state.metrics
    errors_by_kind = dict(m.errors.copy())
    n_decisions = sum(m.decisions.copy().values())
    n_errors = sum(errors_by_kind.values())
    attempts = n_decisions + n_errors
    errors = {
        "total": n_errors,
        "byKind": errors_by_kind,
        "decisions": n_decisions,
        "rate": n_errors / attempts if attempts else None,
        "scope": "this server process since it started",
    }
    models = models_section(state)
    alerts = live_alerts(series, drift, errors, targets, models)
    alerts += _stored_alerts(state.store, now)
    payload = {
        "generatedAt": now.isoformat(),
        "windowMinutes": window_min,
        "targets": targets,
        **series,
        "outcomes": {
            "scope": f"experiment {exp['name']}" if exp else f"last {window_min:g} minutes",
            "arms": arm_outcomes(state.store, exp["name"] if exp else None, since),
        },
        "experiment": exp,
        "drift": drift,
        "alerts": alerts,
        "errors": errors,
        "models": models,
    }
    payload = _json_safe(payload)
    with cache.lock:
        if len(cache.payloads) >= 8:  # a few windows are in use at a time: keep memory bounded
            cache.payloads.clear()
        cache.payloads[window_min] = (time.monotonic(), payload)
    return payload


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def extra_metric_lines(state: Any) -> list[str]:
    """Prometheus lines for the alert rules and Grafana: the thresholds of params.yaml
    (``learnops_target``) and the served model's evaluated accuracy (``learnops_model_accuracy``,
    the registry's held-out accuracy of the production version)."""
    t = targets_of(state.params)
    lines = [
        "# HELP learnops_target Thresholds of params.yaml (evaluate.targets, monitor.alpha, "
        "serve.max_error_rate) the alert rules use.",
        "# TYPE learnops_target gauge",
    ]
    names = {
        "mlUsage": "ml_usage",
        "latencyMs": "latency_ms",
        "accuracy": "accuracy",
        "driftAlpha": "drift_alpha",
        "errorRate": "error_rate",
    }
    for key, name in names.items():
        lines.append(f'learnops_target{{name="{name}"}} {t[key]!r}')
    lines += [
        "# HELP learnops_model_accuracy Held-out accuracy of the production version (registry).",
        "# TYPE learnops_model_accuracy gauge",
    ]
    try:
        prod = state.registry.production("mlp")
    except Exception:  # a locked database: leave the gauge out this scrape
        prod = None
    acc = _finite((prod.metrics or {}).get("accuracy")) if prod is not None else None
    if acc is not None:
        lines.append(f'learnops_model_accuracy{{model="mlp",version="{prod.version}"}} {acc!r}')
    return lines
