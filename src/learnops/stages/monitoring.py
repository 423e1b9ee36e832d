"""The ``monitoring`` stage: the decision service's behaviour over the exported window.

Reads ``data/processed/decisions.parquet``, splits it by time into a training reference (the first
70 %) and recent traffic (the rest), and computes rolling metrics, metrics per model version,
feature drift (the rule of :mod:`learnops.monitoring.drift` with ``params.monitor``: permutation
KS per feature with whole learners permuted, Holm over the features, PSI as effect size) and alerts
against ``evaluate.targets``. Writes the DVC metric
``reports/metrics/monitoring.json``: every value, the service's logged latencies included, is a
function of the exported decisions, so a rerun on the same export writes the same bytes. Returns
what notebook 06 shows.

No data (issue 22, item 14): with no decisions in the export window the stage monitors nothing
and returns a :class:`~learnops.stages.Skipped`; ``monitoring.json`` is
``{"skipped": true, "reason": …}`` (no alert is raised).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd

    from learnops.config import Params
    from learnops.monitoring.drift import DriftResult
    from learnops.monitoring.metrics import Alert
    from learnops.stages import Skipped

#: Share of the decisions (by time) that stands in for the training reference.
REFERENCE_FRAC = 0.7
#: Width of the rolling windows (a pandas offset).
WINDOW = "7D"
#: Number of most-drifted features whose distributions the notebook draws.
TOP_DRIFTED = 6
#: Columns of the per-version table the notebook shows.
VERSION_COLUMNS: tuple[str, ...] = (
    "n",
    "ml_usage",
    "latency_p50_ms",
    "latency_p95_ms",
    "ml_accuracy",
    "fallback_accuracy",
    "ml_next_accuracy",
    "ml_next_engagement",
    "fallback_next_accuracy",
    "fallback_next_engagement",
)


@dataclass
class MonitoringResult:
    """What notebook 06 shows."""

    decisions: pd.DataFrame
    reference: pd.DataFrame
    recent: pd.DataFrame
    split: pd.DataFrame
    rolling: pd.DataFrame
    by_version: pd.DataFrame
    drift: pd.DataFrame
    """Per feature: KS statistic, permutation p-value, adjusted p-value, drifted, PSI, means."""
    drift_result: DriftResult
    top_drifted: list[str]
    alerts: list[Alert]
    alerts_table: pd.DataFrame
    report: dict[str, Any]
    metrics: dict[str, Any]
    targets: dict[str, float]
    alpha: float
    """Family-wise false-alarm rate of the dataset drift verdict (``params.monitor.alpha``)."""

    skipped: ClassVar[bool] = False

    @property
    def drift_summary(self) -> pd.DataFrame:
        """The drift verdict and how it was reached, one row per fact."""
        return drift_summary(self.drift_result)


def drift_summary(res: DriftResult) -> pd.DataFrame:
    """The verdict, test, unit, sizes and drifted features of a drift test as a table."""
    import pandas as pd

    facts = {
        "verdict": res.status,
        "dataset drift": "yes" if res.dataset_drift else "no",
        "test": f"{res.method}, {res.permutations} permutations",
        "permuted unit": res.unit,
        "multiplicity": f"{res.correction} at alpha {res.alpha:g}",
        "reference rows (units)": f"{res.n_reference:,} ({res.n_reference_units:,})",
        "current rows (units)": f"{res.n_current:,} ({res.n_current_units:,})",
        "minimum rows": str(res.min_n),
        "drifted features": ", ".join(res.drifted_features) or "none",
    }
    return pd.DataFrame({"value": list(facts.values())}, index=pd.Index(facts, name="drift"))


def split_table(reference: pd.DataFrame, recent: pd.DataFrame) -> pd.DataFrame:
    """Rows and time span of the reference and the recent traffic."""
    import pandas as pd

    rows = []
    for name, df in (("reference (training)", reference), ("recent traffic", recent)):
        ts = pd.to_datetime(df["timestamp"], utc=True)
        rows.append(
            {
                "part": name,
                "decisions": len(df),
                "from": ts.min().strftime("%Y-%m-%d %H:%M") if len(df) else None,
                "to": ts.max().strftime("%Y-%m-%d %H:%M") if len(df) else None,
            }
        )
    return pd.DataFrame(rows).set_index("part")


def alerts_table(alerts: list[Alert]) -> pd.DataFrame:
    """One row per alert: metric, feature (drift alerts), value, threshold, model version."""
    import pandas as pd

    rows = [
        {
            "metric": a.metric,
            "feature": a.labels.get("feature"),
            "value": a.value,
            "threshold": a.threshold,
            "model_version": a.model_version,
        }
        for a in alerts
    ]
    return pd.DataFrame(rows, columns=["metric", "feature", "value", "threshold", "model_version"])


def top_drifted(drift: pd.DataFrame, k: int = TOP_DRIFTED) -> list[str]:
    """The ``k`` features with the largest KS statistic (the permutation p-values of large
    shifts all sit at their floor 1/(B+1), so the statistic ranks them)."""
    return (
        drift.sort_values("ks_stat", ascending=False, kind="mergesort")["feature"].head(k).tolist()
    )


def run(params: Params) -> MonitoringResult | Skipped:
    """Monitor the exported decisions: split, rolling and per-version metrics, drift, alerts;
    write monitoring.json."""
    import pandas as pd

    from learnops.io import jsonable
    from learnops.monitoring import metrics as mon
    from learnops.stages import Skipped, no_rows_reason, write_metrics

    t = params.evaluate.targets
    path = params.path(params.paths.processed_dir) / "decisions.parquet"
    decisions = pd.read_parquet(path)
    if decisions.empty:
        reason = no_rows_reason(params, "decisions")
        doc: dict[str, Any] = {"skipped": True, "reason": reason}
        write_metrics(params, "monitoring", doc)
        return Skipped("monitoring", reason, "no traffic is monitored", metrics=doc)
    reference, recent = mon.time_split(decisions, reference_frac=REFERENCE_FRAC)
    drift_res = mon.drift_result(reference, recent, params)
    drift = mon.drift_report(reference, recent, result=drift_res)
    alerts = mon.check_alerts(recent, reference, params=params, drift=drift_res)
    report = jsonable(
        mon.monitoring_report(recent, reference, params=params, window=WINDOW, drift=drift_res)
    )
    write_metrics(params, "monitoring", report)
    by_version = mon.metrics_by_version(decisions).set_index("version")
    return MonitoringResult(
        decisions=decisions,
        reference=reference,
        recent=recent,
        split=split_table(reference, recent),
        rolling=mon.rolling_metrics(decisions, window=WINDOW),
        by_version=by_version[list(VERSION_COLUMNS)],
        drift=drift,
        drift_result=drift_res,
        top_drifted=top_drifted(drift),
        alerts=alerts,
        alerts_table=alerts_table(alerts),
        report=report,
        metrics=report,
        targets={
            "accuracy": t.accuracy,
            "ml_usage": t.ml_usage,
            "latency_ms": t.latency_ms,
            "calibration_error": t.calibration_error,
        },
        alpha=drift_res.alpha,
    )
