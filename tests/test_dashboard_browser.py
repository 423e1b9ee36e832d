"""GET /dashboard in a real browser: Debian's chromium (never a downloaded build) driven by
Playwright against a real ``learnops serve`` on 127.0.0.1.

A scratch project gets a trained model in production, a training export (the drift reference)
and a running experiment; a bounded burst of /decide and /outcomes (shifted engagement, so the
drift test has something to find) goes to the server; the page is opened, asked for the client
token, and every panel must render with data. A drift alert written to the store must appear
within one refresh. The page is saved as dashboard.png under pytest's tmp dir, and checked to be a
real PNG of the page; with ``LEARNOPS_SCREENSHOT_DIR`` set (``make dashboard-screenshot`` sets it
to reports/) it is also copied there, which is how the README's reports/dashboard.png is
refreshed on purpose (a plain test run leaves the committed screenshot alone).

Skipped, with the reason, when Playwright or /usr/bin/chromium is missing (.ci/run installs
chromium with apt-get when it runs as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

SCREENSHOT_DIR_ENV = "LEARNOPS_SCREENSHOT_DIR"  # where to copy the screenshot, if set
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path(os.environ.get("LEARNOPS_CHROMIUM", "/usr/bin/chromium"))
ADMIN, CLIENT = "browser-admin-token", "browser-client-token"
REFRESH_S = 2  # the page's refresh period in this test (?refresh=2)
N_DECISIONS, N_LEARNERS = 150, 40
PANELS = (
    "decisions", "arms", "usage", "latency", "outcomes", "experiment", "alerts", "drift", "models",
)  # fmt: skip


def _playwright():
    # a skip is right for a plain test run; a screenshot asked for (make dashboard-screenshot)
    # that cannot be taken is an error
    give_up = pytest.fail if os.environ.get(SCREENSHOT_DIR_ENV) else pytest.skip
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        give_up("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.is_file():
        give_up(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does, as root)")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A scratch project: params.yaml and the training export (the drift reference); the
    traffic to send comes from the same simulation."""
    from learnops.config import load_params
    from learnops.data.simulate import simulate_decisions_table
    from learnops.io import write_table

    root = tmp_path_factory.mktemp("dashboard")
    raw = {
        "seed": 3,
        "mlp": {"epochs": 3, "hidden": [32, 16], "confidence_threshold": 0.5},
        "serve": {"epsilon": 0.05, "seed": 7},
        "monitor": {"permutations": 399, "min_n": 40, "serve_interval_s": 1.5},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LEARNOPS_DB_URL", raising=False)
        params = load_params(root / "params.yaml")
    table = simulate_decisions_table(1600, 5)
    reference, traffic = table.iloc[:1200], table.iloc[1200:].reset_index(drop=True)
    write_table(params.path(params.paths.processed_dir) / "decisions.parquet", reference)
    return root, params, reference, traffic


def _deploy_model(params, reference) -> None:
    """Train mlp v1 on the reference, register and deploy it (the server picks it up)."""
    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry
    from learnops.mlp import save, train

    result = train(reference, params.mlp, seed=params.seed)
    model_dir = save(result, params.root / "trained" / "mlp")
    store = EventStore(params.db_url)
    try:
        reg = Registry(store, params.path(params.paths.models_dir) / "registry")
        v = reg.start("mlp", data_count=len(reference))
        reg.complete("mlp", v.version, model_dir, {"accuracy": float(result.metrics["accuracy"])})
        reg.deploy("mlp", v.version)
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def server(project):
    """``learnops serve`` on a free loopback port, client and admin tokens configured, serving
    mlp v1 (trained here while the server starts)."""
    import httpx

    from learnops.serve import hash_token

    root, params, reference, _ = project
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "LEARNOPS_DB_URL"}
    env.update(LEARNOPS_ADMIN_TOKENS=hash_token(ADMIN), LEARNOPS_TOKENS=hash_token(CLIENT))
    cmd = [sys.executable, "-m", "learnops", "serve", "--params", str(root / "params.yaml")]
    cmd += ["--port", str(port), "--log-level", "warning"]
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _deploy_model(params, reference)
        deadline = time.monotonic() + 60
        while True:  # up, and serving v1 (/metrics makes it look the registry up)
            if proc.poll() is not None:
                raise AssertionError((root / "server.log").read_text())
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(url + "/metrics", timeout=5)
                if 'learnops_model_info{model="mlp",version="v1"} 1' in r.text:
                    break
            assert time.monotonic() < deadline, "the server did not serve v1 within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _burst(url: str, traffic) -> list[str]:
    """An experiment, then N_DECISIONS decisions of N_LEARNERS learners (engagement shifted
    down by 0.25) and outcomes for two thirds of them; returns the learner ids used."""
    import httpx

    from learnops.contracts import FEATURES

    admin = {"Authorization": f"Bearer {ADMIN}"}
    client = {"Authorization": f"Bearer {CLIENT}"}
    learners = [f"pupil-{i:03d}@school.example" for i in range(N_LEARNERS)]
    with httpx.Client(base_url=url, timeout=30) as http:  # generous: CI machines get busy
        r = http.post(
            "/api/mlops/experiments",
            json={"name": "policy_dash", "arms": {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        ids = []
        for i, row in enumerate(traffic.head(N_DECISIONS).to_dict("records")):
            body = {f: float(row[f]) for f in FEATURES}
            body["engagement"] = min(1.0, max(0.0, body["engagement"] - 0.25))
            body["learner_id"] = learners[i % N_LEARNERS]
            r = http.post("/decide", json=body, headers=client)
            assert r.status_code == 200, r.text
            ids.append((r.json()["decision_id"], row))
        for k, (decision_id, row) in enumerate(ids):
            if k % 3 == 2:
                continue
            out = {"decision_id": decision_id}
            for col in ("next_accuracy", "next_engagement"):
                if np.isfinite(row[col]):
                    out[col] = float(row[col])
            if len(out) > 1:
                assert http.post("/outcomes", json=out, headers=client).status_code == 200
    return learners


def _wait_for_data(url: str) -> dict:
    """The dashboard JSON once the drift test saw the burst and the experiment was analysed."""
    import httpx

    deadline = time.monotonic() + 30
    while True:
        r = httpx.get(
            url + "/api/mlops/dashboard", headers={"Authorization": f"Bearer {CLIENT}"}, timeout=30
        )
        assert r.status_code == 200, r.text
        d = r.json()
        drift_done = d["drift"]["nCurrent"] == N_DECISIONS and d["drift"]["features"]
        if drift_done and d["experiment"] and d["experiment"]["analysis"]:
            return d
        assert time.monotonic() < deadline, "drift test or experiment analysis not ready in 30 s"
        time.sleep(0.5)


def _check_png(path: Path, min_width: int, min_height: int) -> None:
    """Assert that ``path`` is a PNG of at least ``min_width`` x ``min_height`` pixels and of
    a size a rendered page has (not a blank or truncated file)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= min_width and height >= min_height, (width, height)
    assert len(data) > 50_000, f"{path} is only {len(data)} bytes: not a rendered dashboard"


def _publish(screenshot: Path) -> Path | None:
    """Copy the screenshot atomically to $LEARNOPS_SCREENSHOT_DIR/dashboard.png when that is
    set (relative to the current directory); return the destination, or None."""
    target_dir = os.environ.get(SCREENSHOT_DIR_ENV)
    if not target_dir:
        return None
    dest = Path(target_dir) / "dashboard.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp.png")
    shutil.copyfile(screenshot, tmp)
    os.replace(tmp, dest)
    return dest


def test_dashboard_in_chromium(project, server, tmp_path):
    sync_playwright = _playwright()
    from learnops.data.store import EventStore, utcnow
    from learnops.hashing import learner_hash
    from learnops.monitoring.metrics import Alert, record_alerts

    _, params, _, traffic = project
    learners = _burst(server, traffic)
    data = _wait_for_data(server)
    assert data["decisions"]["total"] == N_DECISIONS

    requests, console_errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append((r.url, r.headers)))
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            page.goto(f"{server}/dashboard?refresh={REFRESH_S}")
            # tokens are configured: the page asks for one, keeps it in the tab, sends a header
            page.wait_for_selector("#login:not([hidden])", timeout=30_000)
            page.fill("#token", CLIENT)
            page.click("#login button[type=submit]")
            page.wait_for_function(
                "ids => ids.every(id => document.getElementById('panel-' + id)"
                ".getAttribute('data-state') === 'ok')",
                arg=list(PANELS),
                timeout=30_000,
            )

            def count(selector: str) -> int:
                return page.eval_on_selector_all(selector, "els => els.length")

            assert count("#panel-decisions rect.bar") > 0
            assert count("#panel-arms rect.bar") > 0
            assert page.inner_text("#panel-arms .legend").count("arm ") == 3
            assert count("#panel-usage circle.point") > 0 and count("#panel-usage line.target")
            assert count("#panel-latency path.series") == 3 and count("#panel-latency .target")
            assert count("#panel-outcomes circle.point") == 6  # 3 arms x 2 metrics
            assert count("#panel-experiment tbody tr") >= 3 + 1  # arms, then comparisons
            assert "policy_dash" in page.inner_text("#panel-experiment")
            assert "SRM" in page.inner_text("#panel-experiment")
            assert count("#panel-drift tbody tr") == 18
            assert "v1" in page.inner_text("#panel-models")
            headline = page.inner_text("#panel-latency .headline")
            assert "ms p95" in headline and "–" not in headline.split("ms")[0]

            # a drift alert written to the store is in the first refresh after it
            message = "feature hint_rate drifted (injected by the browser test)"
            store = EventStore(params.db_url)
            try:
                injected = utcnow()
                record_alerts(store, [Alert("feature_drift", 1e-4, 0.05, message, "v1")])
            finally:
                store.dispose()
            t0 = time.monotonic()
            page.wait_for_function(
                "t => Date.parse(document.body.dataset.generated || 0) > Date.parse(t)",
                arg=injected.isoformat(),
                timeout=(REFRESH_S + 15) * 1000,
            )
            alert = page.locator("#panel-alerts li[data-metric=feature_drift]", has_text=message)
            assert alert.count() == 1
            lag = time.monotonic() - t0

            text = page.content()
            for lid in learners:
                assert lid not in text and learner_hash(lid) not in text
            screenshot = tmp_path / "dashboard.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    _check_png(screenshot, min_width=1400, min_height=1000)
    published = _publish(screenshot)

    data_requests = [(u, h) for u, h in requests if "/api/mlops/dashboard" in u]
    assert data_requests
    assert all(CLIENT not in u for u, _ in requests)  # never in a URL
    assert any(h.get("authorization") == f"Bearer {CLIENT}" for _, h in data_requests)
    # the first data request is answered 401 before the token is given: expected
    unexpected = [m for m in console_errors if "status of 401" not in m]
    assert not unexpected, unexpected
    print(f"alert shown {lag:.1f} s after it was stored (refresh every {REFRESH_S} s)")
    if published is not None:
        print(f"screenshot copied to {published}")
