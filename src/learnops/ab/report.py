"""The HTML report of a stopped experiment: one self-contained file (inline CSS, figures as
base64 PNGs, no scripts) with the verdict, the arms planned vs observed, the SRM check, every
comparison with its CI and Holm-adjusted p-value, and the figures of :mod:`learnops.ab.plots`.

Input: the experiment's results as stored (``analyze`` results plus an ``experiment`` block, see
:func:`learnops.ab.experiments.report_payload`) and, when available, the learner events for the
time course and the distributions.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["render_report"]

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff;
  --green:#0f7b45; --green-bg:#e3f7ec; --amber:#8a5a00; --amber-bg:#fff4d6;
  --red:#a61b1b; --red-bg:#fde8e8; --grey-bg:#eef1f4; --blue:#1f5fa8; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 28px 28px 60px; }
header h1 { margin: 0 0 4px; font-size: 26px; letter-spacing: -0.01em; }
header .sub { color: var(--muted); }
header .desc { margin-top: 8px; max-width: 80ch; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 22px; margin-top: 20px; }
section h2 { margin: 0 0 12px; font-size: 18px; }
section p.note { color: var(--muted); font-size: 13px; margin: 8px 0 0; }
.verdict { border-radius: 10px; padding: 18px 22px; margin-top: 20px; border: 1px solid; }
.verdict .label { font-size: 12px; text-transform: uppercase; letter-spacing: .08em;
  font-weight: 600; }
.verdict .headline { font-size: 21px; font-weight: 650; margin: 2px 0 4px; }
.verdict.win { background: var(--green-bg); border-color: #b6e6c9; color: var(--green); }
.verdict.nowin { background: var(--amber-bg); border-color: #f3dc9b; color: var(--amber); }
.verdict.bad { background: var(--red-bg); border-color: #f5b5b5; color: var(--red); }
.verdict.nodata { background: var(--grey-bg); border-color: var(--line); color: var(--muted); }
.verdict .detail { color: var(--ink); }
.facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(128px, 1fr)); gap: 10px;
  margin-top: 20px; }
.fact { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 12px 14px; }
.fact .k { color: var(--muted); font-size: 11px; text-transform: uppercase;
  letter-spacing: .06em; }
.fact .v { font-size: 19px; font-weight: 600; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums;
  font-size: 14px; }
th, td { padding: 7px 8px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
th { white-space: normal; vertical-align: bottom; font-size: 11px; text-transform: uppercase;
  letter-spacing: .05em; color: var(--muted);
  font-weight: 600; background: #fafbfc; }
th:first-child, td:first-child, th.l, td.l { text-align: left; }
tbody tr:hover { background: #f9fafb; }
tr.group-start td { border-top: 2px solid var(--line); }
.chip { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px;
  font-weight: 600; }
.chip.yes { background: var(--green-bg); color: var(--green); }
.chip.no { background: var(--grey-bg); color: var(--muted); }
.chip.warn { background: var(--red-bg); color: var(--red); }
.chip.ok { background: var(--green-bg); color: var(--green); }
.pos { color: var(--green); } .neg { color: var(--red); }
.bar { display: inline-block; height: 8px; border-radius: 4px; vertical-align: middle; }
.bar.plan { background: #c5d3e8; } .bar.obs { background: var(--blue); }
figure { margin: 14px 0 0; } figure img { max-width: min(100%, 860px); height: auto; display: block;
  margin: 0 auto; } figcaption { color: var(--muted); font-size: 13px; text-align: center; }
footer { color: var(--muted); font-size: 12px; margin-top: 24px; }
code { background: var(--grey-bg); padding: 0 4px; border-radius: 4px; }
"""

log = logging.getLogger("learnops.ab")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, fmt: str = ".4f", signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return str(value)
    spec = ("+" if signed else "") + fmt
    return format(value, spec)


def _p(value: Any) -> str:
    if value is None:
        return "—"
    if value < 0.0001:
        return "&lt;0.0001"
    return f"{value:.4f}" if value < 0.1 else f"{value:.3f}"


def _int(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def _when(value: Any) -> str:
    if not value:
        return "—"
    try:
        ts = datetime.fromisoformat(str(value))
    except ValueError:
        return _e(value)
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def _duration(start: Any, stop: Any) -> str:
    try:
        seconds = (
            datetime.fromisoformat(str(stop)) - datetime.fromisoformat(str(start))
        ).total_seconds()
    except (TypeError, ValueError):
        return "—"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(seconds, 0) / 60:.0f} min"


def _table(head: str, rows: list[str]) -> str:
    body = "".join(rows)
    return f'<div class="scroll"><table><thead>{head}</thead><tbody>{body}</tbody></table></div>'


def _correction(results: Mapping[str, Any]) -> str:
    """The multiplicity correction's display name (Holm or BH)."""
    return {"holm": "Holm", "bh": "BH"}.get(str(results.get("correction") or "holm"), "Holm")


def _method_note(results: Mapping[str, Any]) -> str:
    """What the intervals are: anytime-valid confidence sequences or fixed-horizon CIs."""
    if results.get("method") == "sequential":
        return (
            "Intervals are anytime-valid confidence sequences (valid however often the "
            "experiment was looked at while it ran), wider than fixed-horizon CIs."
        )
    return "Intervals are fixed-horizon CIs (valid for one look at the end)."


def _time_step(events: Any) -> str:
    """The step of the time-course plot: days for experiments that ran days, else hours,
    minutes or seconds, so that a short experiment still shows a course (not one point)."""
    import pandas as pd

    ts = pd.to_datetime(events["timestamp"], utc=True)
    span = ts.max() - ts.min()
    for step, unit in (("D", "3D"), ("h", "3h"), ("min", "3min")):
        if span >= pd.Timedelta(unit):
            return step
    return "s"


def _figure_html(fig: Any, caption: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _verdict(results: Mapping[str, Any]) -> str:
    winner = results.get("winner")
    reason = results.get("reason") or ""
    srm = results.get("srm") or {}
    if reason in ("no_data", "not_analyzable"):
        cls, label, headline = "nodata", "No analysis", "No winner — not enough data"
    elif srm.get("mismatch"):
        cls, label = "bad", "Sample ratio mismatch"
        headline = "Do not trust the effects: the arms' sizes differ from the planned split"
    elif winner:
        control = results.get("control")
        cls, label, headline = "win", "Winner", f"{winner} beats the control ({control})"
    else:
        cls, label = "nowin", "No winner"
        headline = f"No arm is shown better than the control ({results.get('control')})"
    return (
        f'<div class="verdict {cls}"><div class="label">{_e(label)}</div>'
        f'<div class="headline">{_e(headline)}</div>'
        f'<div class="detail">{_e(results.get("decision", ""))}'
        + (f' <span class="chip no">{_e(reason)}</span>' if reason else "")
        + "</div></div>"
    )


def _facts(results: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    items = [
        ("Duration", _duration(meta.get("started_at"), meta.get("stopped_at"))),
        ("Decisions", _int(meta.get("n_decisions"))),
        ("With an outcome", _int(meta.get("n_with_outcomes"))),
        ("Learners", _int(meta.get("n_learners"))),
        ("Control", _e(meta.get("control") or results.get("control", "—"))),
        ("Min. learners / arm", _int(meta.get("min_sample_size"))),
        (f"Alpha ({_correction(results)})", _num(results.get("alpha"), ".3g")),
        ("Practical threshold", _num(results.get("practical_threshold"), ".3g")),
    ]
    return (
        '<div class="facts">'
        + "".join(
            f'<div class="fact"><div class="k">{k}</div><div class="v">{v}</div></div>'
            for k, v in items
        )
        + "</div>"
    )


def _arms_table(results: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    planned = dict(meta.get("arms") or {})
    groups = dict(results.get("groups") or {})
    srm = results.get("srm") or {}
    expected = srm.get("expected") or {}
    arms = list(dict.fromkeys([*planned, *groups]))
    total = sum((groups.get(a) or {}).get("n_learners", 0) for a in arms)
    control = meta.get("control") or results.get("control")
    rows = []
    for arm in arms:
        g = groups.get(arm) or {}
        n = g.get("n_learners", 0)
        share = n / total if total else None
        plan = planned.get(arm)
        bar_plan = f'<span class="bar plan" style="width:{(plan or 0) * 120:.0f}px"></span>'
        bar_obs = f'<span class="bar obs" style="width:{(share or 0) * 120:.0f}px"></span>'
        rows.append(
            "<tr>"
            f'<td class="l"><b>{_e(arm)}</b>'
            + (' <span class="chip no">control</span>' if arm == control else "")
            + "</td>"
            f"<td>{_num(plan, '.1%')}</td><td class='l'>{bar_plan}</td>"
            f"<td>{_num(share, '.1%')}</td><td class='l'>{bar_obs}</td>"
            f"<td>{_int(n)}</td><td>{_num(expected.get(arm), ',.1f')}</td>"
            f"<td>{_int(g.get('n_rows'))}</td>"
            "</tr>"
        )
    head = (
        "<tr><th>Arm</th><th>Planned share</th><th class='l'></th><th>Observed share</th>"
        "<th class='l'></th><th>Learners</th><th>Expected learners</th><th>Decisions</th></tr>"
    )
    return _table(head, rows)


def _srm_html(results: Mapping[str, Any]) -> str:
    srm = results.get("srm")
    if not srm:
        return "<p>Not computed: there was nothing to analyse.</p>"
    chip = (
        '<span class="chip warn">mismatch</span>'
        if srm.get("mismatch")
        else '<span class="chip ok">no mismatch</span>'
    )
    return (
        f"<p>{chip} &nbsp; chi² = {_num(srm.get('chi2'), '.2f')} with {_int(srm.get('df'))} df, "
        f"p = {_p(srm.get('p_value'))} (a mismatch is flagged below p = "
        f"{_num(srm.get('threshold'), '.3g')}). Learners counted per arm against the planned "
        "split; a mismatch means the assignment or the logging lost learners unevenly.</p>"
    )


def _comparisons_table(results: Mapping[str, Any]) -> str:
    comps = list(results.get("comparisons") or [])
    if not comps:
        return "<p>No comparisons: there was nothing to analyse.</p>"
    level = comps[0].get("ci_level") or (1 - (results.get("alpha") or 0.05))
    corr = _correction(results)
    interval = "CS" if results.get("method") == "sequential" else "CI"
    rows = []
    last_metric = None
    for c in comps:
        start = c["metric"] != last_metric
        last_metric = c["metric"]
        diff = c.get("diff")
        sign = "" if diff is None or diff == 0 else ("pos" if diff > 0 else "neg")
        if c.get("significant"):
            verdict = '<span class="chip yes">significant</span>'
        else:
            verdict = '<span class="chip no">n.s.</span>'
        ci = f"{_num(c.get('ci_low'), '.3f', True)} … {_num(c.get('ci_high'), '.3f', True)}"
        rows.append(
            f"<tr{' class=group-start' if start and rows else ''}>"
            f'<td class="l">{_e(c["metric"]) if start else ""}</td>'
            f'<td class="l"><b>{_e(c["treatment"])}</b> vs {_e(c["control"])}</td>'
            f"<td>{_int(c.get('n_treatment'))} / {_int(c.get('n_control'))}</td>"
            f"<td>{_num(c.get('mean_treatment'), '.3f')}</td>"
            f"<td>{_num(c.get('mean_control'), '.3f')}</td>"
            f'<td class="{sign}"><b>{_num(diff, ".4f", True)}</b></td>'
            f"<td>{ci}</td>"
            f"<td>{_num(c.get('relative_lift'), '.1%', True)}</td>"
            f"<td>{_p(c.get('p_value'))}</td><td><b>{_p(c.get('p_adjusted'))}</b></td>"
            f'<td class="l">{verdict}</td><td>{_num(c.get("mde"), ".3f")}</td>'
            "</tr>"
        )
    head = (
        "<tr><th>Metric</th><th>Comparison</th><th>Learners arm / ctrl</th><th>Mean arm</th>"
        f"<th>Mean control</th><th>Difference</th><th>{level:.0%} {interval}</th><th>Lift</th>"
        f"<th>p</th><th>p ({corr})</th><th class='l'>{corr}</th><th>MDE</th></tr>"
    )
    return _table(head, rows)


def _figures(results: Mapping[str, Any], events: Any) -> dict[str, str]:
    """name → figure HTML for what the data allows (a figure that fails is left out)."""
    from learnops.ab import plots

    out: dict[str, str] = {}
    control = results.get("control", "gpt4")
    metrics = list(results.get("metrics") or [])
    alpha = results.get("alpha") or 0.05
    primary = "engagement" if "engagement" in metrics else (metrics[0] if metrics else None)
    jobs: list[tuple[str, Any, str]] = []
    if results.get("srm"):
        jobs.append(("srm", lambda: plots.plot_group_sizes(results), "Learners per arm vs planned"))
    if results.get("comparisons"):
        jobs.append(("forest", lambda: plots.plot_forest(results), "Treatment effects with CIs"))
    if events is not None and len(events) and primary:
        from learnops.ab.analysis import cumulative_effects, learner_table

        def time_course() -> Any:
            cum = cumulative_effects(
                events, primary, control=control, alpha=alpha, freq=_time_step(events)
            )
            if not len(cum):
                raise ValueError("no time course")
            return plots.plot_cumulative(cum, primary)

        def distributions() -> Any:
            present = [m for m in metrics if m in events.columns]
            return plots.plot_metric_distributions(learner_table(events, present), present)

        jobs.append(("time", time_course, f"Cumulative effect on {primary} over time"))
        jobs.append(("dist", distributions, "Per-learner metric distributions by arm"))
    if results.get("looks") and primary:
        from learnops.ab.sequential import sequence_table

        def sequence() -> Any:
            table = sequence_table(results["looks"], primary)
            if not len(table):
                raise ValueError("no looks")
            return plots.plot_confidence_sequence(
                table, primary, threshold=results.get("practical_threshold") or 0.0, alpha=alpha
            )

        jobs.append(("sequence", sequence, f"Confidence sequence of {primary} at each look"))
    for key, make, caption in jobs:
        try:
            out[key] = _figure_html(make(), caption)
        except Exception as exc:  # a figure is an extra: the tables carry the results
            log.warning("A/B report: figure %r left out (%s: %s)", key, type(exc).__name__, exc)
    return out


def render_report(payload: Mapping[str, Any], events: Any = None) -> str:
    """The report HTML of an experiment's stored results (``payload``: the analysis results with
    an ``experiment`` metadata block) and, optionally, its learner events."""
    meta = dict(payload.get("experiment") or {})
    name = meta.get("name", "experiment")
    figs = _figures(payload, events)
    arms = ", ".join(f"{a} {s:.0%}" for a, s in (meta.get("arms") or {}).items())
    desc = meta.get("description")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>A/B experiment {_e(name)}</title><style>{CSS}</style></head><body><main>",
        f"<header><h1>Experiment <code>{_e(name)}</code></h1>",
        f'<div class="sub">{_when(meta.get("started_at"))} → {_when(meta.get("stopped_at"))}'
        f" · arms {_e(arms)}"
        + (f" · started by {_e(meta['created_by'])}" if meta.get("created_by") else "")
        + "</div>",
        f'<div class="desc">{_e(desc)}</div>' if desc else "",
        "</header>",
        _verdict(payload),
        _facts(payload, meta),
        "<section><h2>Arms: planned vs observed</h2>",
        _arms_table(payload, meta),
        '<p class="note">Shares are of learners (the randomization unit); decisions are the '
        "logged decisions of each arm, with or without an outcome.</p>",
        "</section>",
        "<section><h2>Sample ratio check (SRM)</h2>",
        _srm_html(payload),
        figs.get("srm", ""),
        "</section>",
        "<section><h2>Comparisons with the control</h2>",
        _comparisons_table(payload),
        '<p class="note">One value per learner (the mean of the learner\'s decisions). '
        f"Difference = arm − control; p-values are {_correction(payload)}-adjusted over all "
        f"comparisons; significant means p ({_correction(payload)}) &lt; alpha. "
        + _method_note(payload)
        + " A winner must beat the control on the primary metric with the interval's lower "
        "bound above the practical threshold, with at least the minimum learners per arm, and "
        "no guardrail metric worse than its margin. MDE: the smallest difference a "
        "fixed-horizon test of this sample detects with the planned power.</p>",
        figs.get("forest", ""),
        "</section>",
    ]
    if "time" in figs or "dist" in figs or "sequence" in figs:
        parts += [
            "<section><h2>Over time and per learner</h2>",
            figs.get("sequence", ""),
            figs.get("time", ""),
            figs.get("dist", ""),
            "</section>",
        ]
    parts += [
        f"<footer>learnops · unit of analysis: {_e(payload.get('unit', 'learner'))} · "
        f"correction: {_e(payload.get('correction', 'holm'))} · metrics: "
        f"{_e(', '.join(payload.get('metrics') or []))}</footer>",
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)
