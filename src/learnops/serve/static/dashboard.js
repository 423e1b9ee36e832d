/* learnops operations dashboard: fetches /api/mlops/dashboard every few seconds and draws each
 * panel with hand-written SVG. No framework, no build step, nothing from another origin.
 * The token (when the server needs one) lives in sessionStorage and goes in the Authorization
 * header, never in the URL. Every text from the server is set with textContent. */
"use strict";
(function () {
  const TOKEN_KEY = "learnops.dashboard.token";
  const SVG = "http://www.w3.org/2000/svg";
  const params = new URLSearchParams(window.location.search);
  const REFRESH_MS = Math.max(1, Number(params.get("refresh")) || 5) * 1000;
  const COLORS = {
    ml: "#2563eb", llm: "#f59e0b", rule: "#6b7280", gpt4: "#f59e0b", hybrid: "#10b981",
    p50: "#10b981", p95: "#f59e0b", p99: "#ef4444", usage: "#2563eb",
  };
  const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444", "#0ea5e9"];
  let timer = null;
  let busy = false;

  // -- small helpers ------------------------------------------------------------------------
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function color(name, i) { return COLORS[name] || PALETTE[i % PALETTE.length]; }
  function num(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return "–";
    return Number(x).toFixed(digits === undefined ? 2 : digits);
  }
  function pct(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return "–";
    return (100 * x).toFixed(digits === undefined ? 1 : digits) + "%";
  }
  function pval(p) {
    if (p === null || p === undefined || !isFinite(p)) return "–";
    return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
  }
  function hhmm(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toISOString().slice(11, 16);
  }
  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }
  function slot(panel, name) { return panel.querySelector('[data-slot="' + name + '"]'); }
  function clear(node) { while (node && node.firstChild) node.removeChild(node.firstChild); }
  function headline(panel, big, small, cls) {
    const h = slot(panel, "headline");
    clear(h);
    const b = el("span", cls ? { class: cls } : {}, big);
    h.appendChild(b);
    if (small) h.appendChild(el("small", {}, small));
  }
  function legend(panel, items) {
    const l = slot(panel, "legend");
    if (!l) return;
    clear(l);
    for (const it of items) {
      const s = el("span");
      const i = el("i", it.dash ? { class: "dash" } : {});
      if (!it.dash) i.style.background = it.color;  // CSSOM: the CSP forbids style attributes
      s.appendChild(i);
      s.appendChild(document.createTextNode(it.label));
      l.appendChild(s);
    }
  }
  function table(headers, rows, numeric) {
    const t = el("table");
    const tr = el("tr");
    headers.forEach((h, i) => tr.appendChild(el("th", numeric && numeric[i] ? { class: "num" } : {}, h)));
    const thead = el("thead");
    thead.appendChild(tr);
    t.appendChild(thead);
    const tb = el("tbody");
    for (const row of rows) {
      const r = el("tr");
      row.forEach((c, i) => {
        const td = el("td", numeric && numeric[i] ? { class: "num" } : {});
        if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "–" : String(c);
        r.appendChild(td);
      });
      tb.appendChild(r);
    }
    t.appendChild(tb);
    return t;
  }
  function badge(text, cls) { return el("span", { class: "badge " + cls }, text); }
  function setState(panel, state) { panel.setAttribute("data-state", state); }

  // -- charts --------------------------------------------------------------------------------
  const H = 190, M = { l: 46, r: 14, t: 12, b: 22 };
  let W = 560;
  function widthOf(container) {
    // draw at the container's own pixel width: text stays at its CSS size in every panel
    W = Math.max(260, Math.round(container.clientWidth || 560));
    return W;
  }
  function frame(buckets, yMax, fmt, logMin) {
    const svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img" });
    const iw = W - M.l - M.r, ih = H - M.t - M.b;
    let y, ticks;
    if (logMin) {  // log scale from logMin to yMax (powers of ten)
      const lo = Math.log10(logMin), hi = Math.log10(yMax);
      y = (v) => M.t + ih - (ih * (Math.log10(Math.max(v, logMin)) - lo)) / (hi - lo || 1);
      ticks = [];
      for (let e = Math.round(lo); e <= Math.round(hi); e++) ticks.push(Math.pow(10, e));
    } else {
      y = (v) => M.t + ih - (ih * v) / (yMax || 1);
      ticks = [0, 1, 2, 3, 4].map((k) => (yMax * k) / 4);
    }
    for (const v of ticks) {
      svg.appendChild(svgEl("line", { class: "grid-line", x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }));
      svg.appendChild(svgEl("text", { x: M.l - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
    }
    svg.appendChild(svgEl("line", { class: "axis", x1: M.l, x2: W - M.r, y1: M.t + ih, y2: M.t + ih }));
    const n = buckets.length;
    const x = (i) => M.l + (iw * (i + 0.5)) / n;
    [0, Math.floor(n / 2), n - 1].forEach((i) => {
      if (i >= 0 && i < n) svg.appendChild(svgEl("text", { x: x(i), y: H - 6, "text-anchor": "middle" }, hhmm(buckets[i])));
    });
    return { svg, x, y, bw: iw / n, ih };
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 4, 10]) if (m * p >= v) return m * p;  // quarter ticks stay round
    return 10 * p;
  }
  function noData(f) {
    f.svg.appendChild(svgEl("text", { class: "no-data", x: W / 2, y: M.t + f.ih / 2, "text-anchor": "middle" }, "no decisions in the window"));
  }
  function targetLine(f, yMax, target, label) {
    if (target === null || target === undefined) return;
    const yy = f.y(Math.min(target, yMax));
    f.svg.appendChild(svgEl("line", { class: "target", x1: M.l, x2: W - M.r, y1: yy, y2: yy }));
    f.svg.appendChild(svgEl("text", { class: "target-label", x: W - M.r - 2, y: yy - 4, "text-anchor": "end" }, label));
  }
  function stackedBars(container, buckets, series, fmt) {
    widthOf(container);
    const names = Object.keys(series);
    const totals = buckets.map((_, i) => names.reduce((s, n) => s + (series[n][i] || 0), 0));
    const yMax = niceMax(Math.max(...totals, 4));
    const f = frame(buckets, yMax, fmt || ((v) => (v === 0 ? "0" : num(v, v < 10 ? 1 : 0))));
    if (!totals.some((v) => v > 0)) noData(f);
    buckets.forEach((_, i) => {
      let acc = 0;
      names.forEach((n, k) => {
        const v = series[n][i] || 0;
        if (v <= 0) return;
        const y0 = f.y(acc), y1 = f.y(acc + v);
        f.svg.appendChild(svgEl("rect", {
          class: "bar", x: f.x(i) - f.bw * 0.4, width: f.bw * 0.8, y: y1, height: Math.max(0.5, y0 - y1),
          fill: color(n, k),
        }));
        acc += v;
      });
    });
    clear(container);
    container.appendChild(f.svg);
  }
  function lines(container, buckets, series, opts) {
    widthOf(container);
    const all = [];
    for (const v of Object.values(series)) for (const x of v) if (x !== null && isFinite(x) && x > 0) all.push(x);
    let yMax = opts.yMax || niceMax(Math.max(...all, opts.target || 0) * 1.1);
    let logMin = null;
    if (opts.log) {  // powers of ten around the values and the target
      logMin = Math.pow(10, Math.floor(Math.log10(Math.min(...all, opts.target || 1))));
      yMax = Math.pow(10, Math.ceil(Math.log10(Math.max(...all, opts.target || 1) * 1.5)));
    }
    const f = frame(buckets, yMax, opts.fmt, logMin);
    targetLine(f, yMax, opts.target, opts.targetLabel);
    if (!all.length) noData(f);
    const labels = [];
    Object.entries(series).forEach(([name, values], k) => {
      let d = "";
      let pen = false;
      values.forEach((v, i) => {
        if (v === null || !isFinite(v)) { pen = false; return; }
        d += (pen ? "L" : "M") + f.x(i).toFixed(1) + " " + f.y(Math.min(v, yMax)).toFixed(1);
        pen = true;
        f.svg.appendChild(svgEl("circle", { class: "point", cx: f.x(i), cy: f.y(Math.min(v, yMax)), r: 2.6, fill: color(name, k) }));
      });
      if (d) f.svg.appendChild(svgEl("path", { class: "series", d, fill: "none", stroke: color(name, k), "stroke-width": 2 }));
      // the latest value, written next to its point (placed below, apart from the others)
      for (let i = values.length - 1; i >= 0; i--) {
        const v = values[i];
        if (v === null || !isFinite(v)) continue;
        labels.push({ x: f.x(i) - 6, y: f.y(Math.min(v, yMax)) + 4, text: (opts.label || num)(v), fill: color(name, k) });
        break;
      }
    });
    labels.sort((a, b) => a.y - b.y);
    for (let j = 1; j < labels.length; j++) labels[j].y = Math.max(labels[j].y, labels[j - 1].y + 12);
    for (const l of labels) {
      f.svg.appendChild(svgEl("text", {
        class: "value-label", x: l.x, y: l.y, "text-anchor": "end", fill: l.fill, "font-weight": "600",
      }, l.text));
    }
    clear(container);
    container.appendChild(f.svg);
  }
  function ciChart(container, arms, metrics) {
    const width = widthOf(container);
    const rowH = 22, groupGap = 14, left = 120, right = 150;
    const rows = metrics.length * arms.length;
    const height = 24 + rows * rowH + metrics.length * groupGap;
    const svg = svgEl("svg", { viewBox: "0 0 " + width + " " + height, role: "img" });
    const x = (v) => left + (width - left - right) * Math.max(0, Math.min(1, v));
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      svg.appendChild(svgEl("line", { class: "grid-line", x1: x(v), x2: x(v), y1: 14, y2: height - 4 }));
      svg.appendChild(svgEl("text", { x: x(v), y: 10, "text-anchor": "middle" }, v.toFixed(2)));
    }
    let yy = 24;
    metrics.forEach((metric) => {
      svg.appendChild(svgEl("text", { x: 4, y: yy + 15, "font-weight": "600" }, metric));
      arms.forEach((a, k) => {
        const m = (a.metrics || {})[metric] || {};
        const cy = yy + rowH / 2 + 2;
        svg.appendChild(svgEl("text", { x: left - 8, y: cy + 4, "text-anchor": "end" }, a.arm));
        if (m.mean !== null && m.mean !== undefined) {
          if (m.ciLow !== null && m.ciLow !== undefined) {
            svg.appendChild(svgEl("line", { class: "ci", x1: x(m.ciLow), x2: x(m.ciHigh), y1: cy, y2: cy, stroke: color(a.arm, k), "stroke-width": 3, "stroke-linecap": "round", opacity: 0.55 }));
          }
          svg.appendChild(svgEl("circle", { class: "point", cx: x(m.mean), cy, r: 4.5, fill: color(a.arm, k) }));
          const ci = m.ciLow !== null && m.ciLow !== undefined ? " [" + num(m.ciLow, 2) + ", " + num(m.ciHigh, 2) + "]" : "";
          svg.appendChild(svgEl("text", { x: width - right + 8, y: cy + 4 }, num(m.mean, 2) + ci + " n=" + m.learners));
        } else {
          svg.appendChild(svgEl("text", { x: width - right + 8, y: cy + 4 }, "no outcomes yet"));
        }
        yy += rowH;
      });
      yy += groupGap;
    });
    clear(container);
    container.appendChild(svg);
  }

  // -- panels --------------------------------------------------------------------------------
  function panel(id) { return document.getElementById(id); }

  function drawDecisions(d) {
    const total = d.decisions.total;
    for (const [id, key, label] of [["panel-decisions", "byDecider", "decider"], ["panel-arms", "byArm", "arm"]]) {
      const p = panel(id);
      const series = d.decisions[key] || {};
      headline(p, d.decisions.lastMinute + " in the last minute", total + " in the last " + d.windowMinutes + " min (" + num(d.decisions.perMinute, 1) + "/min)");
      stackedBars(slot(p, "chart"), d.buckets, series);
      legend(p, Object.keys(series).map((n, k) => ({ label: label + " " + n, color: color(n, k) })));
      setState(p, total > 0 ? "ok" : "empty");
    }
  }
  function drawUsage(d) {
    const p = panel("panel-usage");
    const t = d.targets.mlUsage;
    const u = d.mlUsage.overall;
    headline(p, pct(u), "target ≥ " + pct(t, 0), u === null ? "" : u >= t ? "good" : "bad");
    lines(slot(p, "chart"), d.buckets, { usage: d.mlUsage.values }, {
      yMax: 1, target: t, targetLabel: "target " + pct(t, 0), fmt: (v) => pct(v, 0), label: (v) => pct(v, 0),
    });
    legend(p, [{ label: "ML share per bucket", color: COLORS.usage }, { label: "target", dash: true }]);
    setState(p, u === null ? "empty" : "ok");
  }
  function drawLatency(d) {
    const p = panel("panel-latency");
    const o = d.latency.overall;
    const t = d.targets.latencyMs;
    headline(p, num(o.p95, 1) + " ms p95", "p50 " + num(o.p50, 1) + " · p99 " + num(o.p99, 1) + " · target " + t + " ms",
      o.p95 === null ? "" : o.p95 <= t ? "good" : "bad");
    lines(slot(p, "chart"), d.buckets, { p50: d.latency.p50, p95: d.latency.p95, p99: d.latency.p99 }, {
      target: t, targetLabel: "target " + t + " ms", log: true,
      fmt: (v) => (v >= 1 ? num(v, 0) : String(v)), label: (v) => num(v, v < 10 ? 1 : 0),
    });
    slot(p, "chart").setAttribute("title", "log scale");
    legend(p, [{ label: "p50", color: COLORS.p50 }, { label: "p95", color: COLORS.p95 }, { label: "p99", color: COLORS.p99 }, { label: "target (log scale)", dash: true }]);
    setState(p, o.p50 === null ? "empty" : "ok");
  }
  function drawOutcomes(d) {
    const p = panel("panel-outcomes");
    const arms = d.outcomes.arms || [];
    const learners = arms.reduce((s, a) => s + a.learners, 0);
    const withData = arms.some((a) => Object.values(a.metrics).some((m) => m.mean !== null));
    headline(p, arms.length + " arm" + (arms.length === 1 ? "" : "s"), learners + " learners · " + d.outcomes.scope);
    if (arms.length) ciChart(slot(p, "chart"), arms, ["accuracy", "engagement"]);
    else {
      clear(slot(p, "chart"));
      slot(p, "chart").appendChild(el("p", { class: "muted" }, "No decisions with outcomes yet."));
    }
    setState(p, withData ? "ok" : "empty");
  }
  function drawExperiment(d) {
    const p = panel("panel-experiment");
    const body = slot(p, "body");
    clear(body);
    const e = d.experiment;
    if (!e) {
      headline(p, "no experiment running", "decisions follow the default (hybrid) policy");
      setState(p, "empty");
      return;
    }
    const srm = e.srm;
    headline(p, e.name, "since " + when(e.startedAt) + " · control " + e.control);
    body.appendChild(table(
      ["arm", "planned", "learners", "decisions", "with outcome"],
      e.arms.map((a) => [a.arm, pct(a.share, 0), a.learners, a.decisions, a.withOutcome]),
      [false, true, true, true, true],
    ));
    const s = el("p", { class: "sub" });
    s.appendChild(document.createTextNode("Sample-ratio check (learners vs plan): χ² p = " + pval(srm.pValue) + " "));
    s.appendChild(srm.mismatch ? badge("SRM: mismatch", "bad") : badge("no SRM", "good"));
    body.appendChild(s);
    const a = e.analysis;
    const comps = a && a.comparisons ? a.comparisons.filter((c) => c.diff !== null) : [];
    if (comps.length) {
      const kind = a.method === "sequential" ? "Sequential analysis (anytime-valid confidence sequences)" : "Analysis (" + (a.method || "fixed") + "-horizon CIs)";
      body.appendChild(el("p", { class: "sub" }, kind + (a.correction ? ", " + a.correction + "-adjusted" : "") + " · " + when(a.at)));
      body.appendChild(table(
        ["metric", "arm vs control", "diff", "CI", "verdict"],
        comps.map((c) => [
          c.metric, c.treatment + " vs " + c.control, num(c.diff, 3),
          "[" + num(c.ciLow, 3) + ", " + num(c.ciHigh, 3) + "]",
          c.significant ? badge("significant", "good") : badge("not yet", "muted"),
        ]),
        [false, false, true, true, false],
      ));
      const none = [...new Set(a.comparisons.filter((c) => c.diff === null).map((c) => c.metric))];
      const note = (a.decision || "") + (none.length ? " · no outcomes yet for " + none.join(", ") : "");
      if (note) body.appendChild(el("p", { class: "muted" }, note));
    } else {
      body.appendChild(el("p", { class: "muted" }, a ? "analysis: " + (a.decision || "no comparison yet") : "analysis pending (recomputed every 30 s)"));
    }
    setState(p, e.arms.some((x) => x.decisions > 0) ? "ok" : "empty");
  }
  function drawDrift(d) {
    const p = panel("panel-drift");
    const body = slot(p, "body");
    clear(body);
    const dr = d.drift;
    const label = { ok: "no drift", drift: "DRIFT", insufficient_data: "insufficient data", off: "not tested" }[dr.status] || dr.status;
    const drifted = dr.features.filter((f) => f.drifted).map((f) => f.feature);
    headline(p, label + (drifted.length ? " in " + drifted.length + " feature" + (drifted.length > 1 ? "s" : "") : ""),
      "last " + dr.nCurrent + " decisions · permutation KS, " + dr.correction + " at α " + dr.alpha + " · tested " + when(dr.testedAt),
      dr.status === "drift" ? "bad" : dr.status === "ok" ? "good" : "");
    if (!dr.features.length) {
      body.appendChild(el("p", { class: "muted" }, "Not tested yet: the server tests the last " + dr.window +
        " decisions against the training export (data/processed/decisions.parquet) every " + dr.intervalSeconds +
        " s, once there are enough of them (monitor.min_n)."));
      setState(p, "empty");
      return;
    }
    const feats = dr.features.slice().sort((a, b) => (a.pAdjusted ?? a.pValue ?? 1) - (b.pAdjusted ?? b.pValue ?? 1));
    body.appendChild(table(
      ["feature", "p (adj.)", "", "PSI", "verdict"],
      feats.map((f) => {
        const pa = f.pAdjusted ?? f.pValue;
        const bar = el("div", { class: "pbar", title: "adjusted p-value; red mark = alpha" });
        const fill = el("span", { class: f.drifted ? "bad" : "" });
        fill.style.width = (100 * Math.min(1, Math.max(0.02, pa ?? 0))) + "%";
        bar.appendChild(fill);
        const mark = el("b");
        mark.style.left = (100 * dr.alpha) + "%";
        bar.appendChild(mark);
        return [f.feature, pval(pa), bar, num(f.psi, 3), f.drifted ? badge("drifted", "bad") : badge("ok", "good")];
      }),
      [false, true, false, true, false],
    ));
    setState(p, dr.features.length ? "ok" : "empty");
  }
  function drawAlerts(d) {
    const p = panel("panel-alerts");
    const body = slot(p, "body");
    clear(body);
    const alerts = d.alerts || [];
    headline(p, alerts.length ? alerts.length + " active" : "none", "stored (last 24 h) and live threshold checks",
      alerts.length ? "bad" : "good");
    const ul = el("ul", { class: "alerts" });
    for (const a of alerts) {
      const li = el("li", { class: a.source, "data-metric": a.metric });
      li.appendChild(el("div", {}, a.message));
      const meta = [a.source, a.metric];
      if (a.value !== null && a.value !== undefined) meta.push("value " + (a.value !== 0 && Math.abs(a.value) < 0.001 ? a.value.toExponential(1) : num(a.value, 3)));
      if (a.threshold !== null && a.threshold !== undefined) meta.push("threshold " + a.threshold);
      if (a.modelVersion) meta.push("model " + a.modelVersion);
      if (a.at) meta.push(when(a.at));
      li.appendChild(el("div", { class: "meta" }, meta.join(" · ")));
      ul.appendChild(li);
    }
    if (!alerts.length) body.appendChild(el("p", { class: "muted" }, "Every check is within its target."));
    body.appendChild(ul);
    setState(p, "ok");
  }
  function drawModels(d) {
    const p = panel("panel-models");
    const body = slot(p, "body");
    clear(body);
    const m = d.models;
    headline(p, "serving " + (m.serving || "fallback only"), "fallback teacher " + m.fallback + (m.training ? " · retrain running" : ""));
    body.appendChild(table(
      ["model", "production", "deployed", "held-out accuracy", "rows"],
      m.production.map((v) => [v.model, v.version || "none", when(v.deployedAt), v.accuracy === null || v.accuracy === undefined ? "–" : pct(v.accuracy), v.dataCount ?? "–"]),
      [false, false, false, true, true],
    ));
    if (m.deploys && m.deploys.length) {
      body.appendChild(el("p", { class: "sub" }, "Recent deploys"));
      body.appendChild(table(
        ["model", "version", "status", "deployed"],
        m.deploys.map((v) => [v.model, v.version, v.status, when(v.deployedAt)]),
      ));
    }
    setState(p, m.production.some((v) => v.version) ? "ok" : "empty");
  }
  function drawChips(d) {
    const c = document.getElementById("chips");
    clear(c);
    const add = (label, value, cls) => {
      const s = el("span", { class: "chip" + (cls ? " " + cls : "") }, label + " ");
      s.appendChild(el("b", {}, value));
      c.appendChild(s);
    };
    add("model", d.models.serving || "none");
    add("errors", String(d.errors.total), d.errors.total ? "bad" : "good");
    add("alerts", String(d.alerts.length), d.alerts.length ? "bad" : "good");
    if (d.experiment) add("experiment", d.experiment.name);
    if (d.models.training) add("retrain", "running");
  }

  const DRAW = [drawChips, drawDecisions, drawUsage, drawLatency, drawOutcomes, drawExperiment, drawAlerts, drawDrift, drawModels];
  function render(d) {
    for (const f of DRAW) {
      try { f(d); } catch (err) {
        console.error(f.name, err);
      }
    }
    document.body.setAttribute("data-generated", d.generatedAt);
    document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  }

  // -- fetching and the token ---------------------------------------------------------------
  function showLogin(message) {
    document.getElementById("login").hidden = false;
    document.getElementById("login-error").textContent = message || "";
    document.getElementById("updated").textContent = "token needed";
  }
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = "Bearer " + token;
      const win = document.getElementById("window").value;
      const r = await fetch("/api/mlops/dashboard?window=" + encodeURIComponent(win), { headers, cache: "no-store", credentials: "omit" });
      if (r.status === 401) {
        if (token) sessionStorage.removeItem(TOKEN_KEY);
        showLogin(token ? "that token was not accepted" : "");
        return;
      }
      if (!r.ok) throw new Error("HTTP " + r.status);
      document.getElementById("login").hidden = true;
      document.getElementById("forget").hidden = !token;
      render(await r.json());
    } catch (err) {
      document.getElementById("updated").textContent = "refresh failed: " + err.message;
    } finally {
      busy = false;
    }
  }
  function start() {
    const w = params.get("window");
    const sel = document.getElementById("window");
    if (w && [...sel.options].some((o) => o.value === w)) sel.value = w;
    sel.addEventListener("change", refresh);
    document.getElementById("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = document.getElementById("token").value.trim();
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      document.getElementById("token").value = "";
      refresh();
    });
    document.getElementById("forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      refresh();
    });
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
