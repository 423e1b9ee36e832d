"""``learnops traffic``: simulated learners driving a running server (decisions and outcomes).

Each of N learners lives in the simulator's world (:mod:`learnops.data.simulate`: the same
learner model, item bank, answers, features and action effects) and talks to a live server:
at a decision point it POSTs its 18 features to ``/decide``, applies the action the server
served (whatever the A/B arm or exploration), and, when its session ends, POSTs each decision's
outcome to ``/outcomes`` from the simulator's ground truth:

- ``next_accuracy``: share correct over the next (≤5) answers after the decision,
- ``next_engagement``: session engagement after them (the action's effect, and the decision-time
  bonus of +0.04 for the teacher's noiseless ideal action, −0.04 otherwise, included),
- ``session_completed`` and ``total_session_time_ms`` of the decision's session.

Ground truth for off-policy evaluation: decision windows never overlap (a learner's next
decision comes only after the previous decision's 5-answer window closed), and at each decision
the window is simulated for *every* action with common random numbers: the window's randomness
comes from its own RNG seeded from (seed, learner, decision index), each action runs on a deep
copy of the learner and session with an identical RNG, and the real path uses the same RNG, so
the realized outcome is exactly the served action's counterfactual. ``--truth FILE`` writes one
row per decision with the served decision, the 18 features, ``q_<action>`` (counterfactual
next_engagement), ``qa_<action>`` (counterfactual next_accuracy) and ``ideal_action``.

The world is the simulator's default (``SimulateConfig()``: its item bank for the seed, session
lengths, decision rate 1/``decision_every`` per answer). A learner's world depends only on (seed,
learner index) and the actions it is served, never on the concurrency. Heavy libraries (httpx,
numpy, pandas, the simulator) are imported inside functions, so that ``learnops --help`` stays
fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["TrafficResult", "run_traffic", "traffic_command"]

#: Answers after a decision over which its outcome is measured (and before the next decision).
WINDOW = 5
#: Retries of a request answered 5xx (or not sent: connection refused/reset), with backoff.
RETRIES = 4
#: First backoff delay in seconds (doubled after each retry).
RETRY_DELAY = 0.1
#: Seconds per request (connect: 5 s).
TIMEOUT = 30.0
#: Error messages kept for the summary.
_MAX_ERRORS = 5


def traffic_command(
    url: str = typer.Option(..., "--url", help="Base URL of the running server."),
    learners: int = typer.Option(..., "--learners", min=1, help="Simulated learners."),
    token: str | None = typer.Option(
        None, "--token", envvar="LEARNOPS_TOKEN", help="Client token (Authorization: Bearer)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the learners' worlds."),
    decisions_per_learner: int = typer.Option(
        4, "--decisions-per-learner", min=1, help="Decisions each learner makes."
    ),
    concurrency: int = typer.Option(
        4, "--concurrency", min=1, max=256, help="Learners in flight at once."
    ),
    truth: Path | None = typer.Option(
        None,
        "--truth",
        help="Write the ground truth per decision (counterfactual outcome of every action) "
        "to this .parquet or .csv file.",
    ),
    claim_arm: str | None = typer.Option(
        None,
        "--claim-arm",
        help="Claim this A/B arm (ab_group) in every request, like a stale client; the server "
        "must ignore it (it counts the disagreement in /metrics).",
    ),
) -> None:
    """Drive a running server with simulated learners: decisions, then their outcomes."""
    result = run_traffic(
        url,
        learners,
        token=token,
        seed=seed,
        decisions_per_learner=decisions_per_learner,
        concurrency=concurrency,
        truth=truth,
        claim_arm=claim_arm,
    )
    for line in result.summary_lines():
        typer.echo(line)
    if result.failed:
        raise typer.Exit(1)


class TrafficResult:
    """What a traffic run did: one row per decision (ground truth included) and the counts."""

    def __init__(self, url: str, n_learners: int, decisions_per_learner: int) -> None:
        self.url = url
        self.n_learners = n_learners
        self.decisions_per_learner = decisions_per_learner
        self.rows: list[dict] = []
        self.decisions_failed = 0
        self.outcomes_posted = 0
        self.outcomes_failed = 0
        self.errors: list[str] = []
        self.seconds = 0.0
        self.truth_path: Path | None = None

    @property
    def decisions(self) -> int:
        """Decisions the server answered."""
        return len(self.rows)

    @property
    def failed(self) -> bool:
        """True when a decision or an outcome failed."""
        return bool(self.decisions_failed or self.outcomes_failed)

    def table(self):
        """The rows as a DataFrame, in the truth file's columns (learner, then decision order)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=_truth_columns())

    def per_arm(self) -> dict[str, dict[str, float]]:
        """``{arm: {"decisions", "mean_next_engagement"}}`` (arm ``-``: no experiment)."""
        out: dict[str, list[float]] = {}
        for row in self.rows:
            out.setdefault(row["ab_group"] or "-", []).append(row["next_engagement"])
        return {
            arm: {"decisions": len(v), "mean_next_engagement": sum(v) / len(v)}
            for arm, v in sorted(out.items())
        }

    def summary_lines(self) -> list[str]:
        """The end-of-run summary."""
        n = self.decisions
        explored = sum(1 for r in self.rows if r["explored"])
        rate = n / self.seconds if self.seconds > 0 else float("nan")
        lines = [
            f"traffic: {self.n_learners} learners x {self.decisions_per_learner} decisions "
            f"against {self.url}",
            f"decisions: {n} made, {self.decisions_failed} failed; outcomes: "
            f"{self.outcomes_posted} posted, {self.outcomes_failed} failed",
        ]
        arms = ", ".join(
            f"{arm} {v['decisions']} (mean next_engagement {v['mean_next_engagement']:.3f})"
            for arm, v in self.per_arm().items()
        )
        lines.append(f"per arm: {arms or 'none'}")
        share = f"{100.0 * explored / n:.1f} %" if n else "n/a"
        lines.append(f"explored: {explored} of {n} ({share})")
        lines.append(f"elapsed: {self.seconds:.1f} s, {rate:.1f} decisions/s")
        if self.truth_path is not None:
            lines.append(f"truth: {n} rows written to {self.truth_path}")
        lines.extend(f"error: {e}" for e in self.errors)
        return lines


def run_traffic(
    url: str,
    n_learners: int,
    *,
    token: str | None = None,
    seed: int = 0,
    decisions_per_learner: int = 4,
    concurrency: int = 4,
    truth: str | Path | None = None,
    progress: bool | None = None,
    transport=None,
    claim_arm: str | None = None,
) -> TrafficResult:
    """Run ``n_learners`` simulated learners against the server at ``url``.

    ``progress``: a tqdm bar over learners on stderr (None: only on a terminal). ``transport``:
    an httpx transport (tests). Raises LearnopsError when the server cannot be reached or
    refuses the token; other failures are counted in the result (see ``failed``).
    ``claim_arm``: send this ``ab_group`` with every decision request (the server ignores it)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor, as_completed

    import httpx

    from learnops.errors import LearnopsError

    if n_learners < 1 or decisions_per_learner < 1 or concurrency < 1:
        raise LearnopsError("learners, decisions per learner and concurrency must be >= 1")
    if seed < 0:
        raise LearnopsError(f"--seed must be >= 0, got {seed}")
    truth_path = Path(truth) if truth is not None else None
    if truth_path is not None and truth_path.suffix.lower() not in {".parquet", ".pq", ".csv"}:
        raise LearnopsError(f"--truth {truth_path}: use a .parquet or .csv file")
    base = url.rstrip("/")
    try:
        ok = httpx.URL(base).scheme in ("http", "https") and bool(httpx.URL(base).host)
    except httpx.InvalidURL:
        ok = False
    if not ok:
        raise LearnopsError(f"--url must be an http(s) URL like http://127.0.0.1:8000, got {url!r}")
    world = _World.build(seed, decisions_per_learner)
    world.claim_arm = claim_arm
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    kwargs = {"transport": transport} if transport is not None else {}
    result = TrafficResult(base, n_learners, decisions_per_learner)
    with httpx.Client(
        base_url=base,
        headers=headers,
        limits=limits,
        timeout=httpx.Timeout(TIMEOUT, connect=5.0),
        **kwargs,
    ) as client:
        api = _Api(client, base, bool(token), threading.Event())
        api.check_health()
        bar = _progress_bar(n_learners, progress)
        t0 = time.perf_counter()
        per_learner: list[_LearnerResult] = []
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="traffic")
        try:
            futures = [pool.submit(_run_learner, world, api, j) for j in range(n_learners)]
            for fut in as_completed(futures):
                per_learner.append(fut.result())
                bar.update(1)
        except _Fatal as exc:
            api.abort.set()
            raise LearnopsError(str(exc)) from None
        except BaseException:  # Ctrl-C, or a bug: stop the other learners too
            api.abort.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        result.seconds = time.perf_counter() - t0
    for lr in sorted(per_learner, key=lambda x: x.j):
        result.rows.extend(lr.rows)
        result.decisions_failed += lr.decisions_failed
        result.outcomes_posted += lr.outcomes_posted
        result.outcomes_failed += lr.outcomes_failed
        for e in lr.errors:
            if e not in result.errors and len(result.errors) < _MAX_ERRORS:
                result.errors.append(e)
    if truth_path is not None:
        from learnops.io import write_table

        write_table(truth_path, result.table())
        result.truth_path = truth_path
    return result


def _progress_bar(total: int, progress: bool | None):
    import sys

    from tqdm.auto import tqdm

    disable = None if progress is None else not progress  # None: only on a terminal
    return tqdm(total=total, desc="traffic", unit="learner", file=sys.stderr, disable=disable)


def _truth_columns() -> list[str]:
    from learnops.contracts import ACTIONS, FEATURES

    return [
        "decision_id",
        "learner_hash",
        "ab_test",
        "ab_group",
        "action",
        "propensity",
        "explored",
        "decided_by",
        *FEATURES,
        *(f"q_{a}" for a in ACTIONS),
        *(f"qa_{a}" for a in ACTIONS),
        "ideal_action",
        # the realized outcome, as posted, and more about the served decision
        "next_accuracy",
        "next_engagement",
        "session_completed",
        "total_session_time_ms",
        "confidence",
        "model_version",
        "decision_index",
        "outcome_posted",
    ]


def _seed(*parts: int) -> int:
    """A 64-bit seed from integers (stable across processes and platforms)."""
    import hashlib

    key = "\x1f".join(["learnops-traffic", *map(str, parts)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


class _Fatal(Exception):
    """Stops the whole run: the token is refused or the server stopped answering."""


class _Aborted(Exception):
    """Another learner hit a fatal error: stop quietly."""


class _Api:
    """The server's client endpoints over one keep-alive httpx client (thread-safe)."""

    def __init__(self, client, url: str, has_token: bool, abort) -> None:
        self.client = client
        self.url = url
        self.has_token = has_token
        self.abort = abort

    def check_health(self) -> None:
        """``GET /health``: a LearnopsError when the server cannot be reached."""
        import httpx

        from learnops.errors import LearnopsError

        try:
            r = self.client.get("/health")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise LearnopsError(
                f"cannot reach the server at {self.url}: {_describe(exc)}"
            ) from None
        if r.status_code not in (200, 401, 403):
            raise LearnopsError(
                f"{self.url}/health answered HTTP {r.status_code}: "
                "is a learnops server running there?"
            )

    def _token_error(self, r) -> str:
        detail = _detail(r)
        if r.status_code == 403:
            return f"the server refused the client token (403 {detail}) on {r.request.url.path}"
        if self.has_token:
            return (
                f"the server refused the token given with --token (401 {detail}): "
                "pass a valid client token"
            )
        return f"the server requires a client token (401 {detail}): pass it with --token"

    def post(self, path: str, body: dict, idempotent: bool) -> tuple[object | None, str]:
        """(response, "") for an answer below 500, or (None, why) once retries are exhausted.

        Retries 5xx answers and requests that were not sent (connection refused); a request
        that may have reached the server (timeout, connection dropped before the answer) only
        when ``idempotent`` (a repeated /decide would log a second decision). Raises _Fatal on
        401/403 and when the server stopped accepting connections."""
        import time

        import httpx

        delay = RETRY_DELAY
        why = ""
        refused = False
        for attempt in range(RETRIES + 1):
            if self.abort.is_set():
                raise _Aborted
            try:
                r = self.client.post(path, json=body)
            except httpx.ConnectError as exc:
                why, refused = f"{path}: {_describe(exc)}", True
            except httpx.TransportError as exc:  # sent, maybe processed: answer unknown
                why, refused = f"{path}: {_describe(exc)}", False
                if not idempotent:
                    return None, why
            else:
                if r.status_code in (401, 403):
                    raise _Fatal(self._token_error(r))
                if r.status_code < 500:
                    return r, ""
                why, refused = f"{path}: HTTP {r.status_code} {_detail(r)}", False
            if attempt < RETRIES:
                time.sleep(delay)
                delay *= 2
        if refused:
            raise _Fatal(f"the server at {self.url} stopped answering ({why})")
        return None, why


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}" + (f": {text[0]}" if text else "")


def _detail(r) -> str:
    try:
        detail = r.json().get("detail", "")
    except Exception:
        detail = r.text
    return str(detail)[:200]


class _World:
    """What every learner shares: the simulator's config, its item bank and the run's seed."""

    def __init__(self, seed: int, decisions: int, cfg, bank) -> None:
        self.seed = seed
        self.decisions = decisions
        self.cfg = cfg
        self.bank = bank
        #: An arm every /decide request claims (``ab_group``), as a stale client might; the
        #: server must ignore it.
        self.claim_arm: str | None = None

    @classmethod
    def build(cls, seed: int, decisions: int) -> _World:
        """The simulator's default world; the item bank is the simulator's for ``seed``."""
        import numpy as np

        from learnops.config import SimulateConfig
        from learnops.data.simulate import _item_bank, _make_items

        cfg = SimulateConfig()
        item_seq, _ = np.random.SeedSequence(seed).spawn(2)  # as simulate() draws its items
        items = _make_items(cfg, np.random.default_rng(item_seq))
        return cls(seed, decisions, cfg, _item_bank(items))


class _LearnerResult:
    def __init__(self, j: int) -> None:
        self.j = j
        self.rows: list[dict] = []
        self.decisions_failed = 0
        self.outcomes_posted = 0
        self.outcomes_failed = 0
        self.errors: list[str] = []

    def error(self, message: str) -> None:
        if message not in self.errors and len(self.errors) < _MAX_ERRORS:
            self.errors.append(message)


class _Window:
    """The outcome of a decision's window: the ≤5 answers after it."""

    __slots__ = ("next_accuracy", "next_engagement", "dropped_out", "difficulty_delta")

    def __init__(self, next_accuracy, next_engagement, dropped_out, difficulty_delta) -> None:
        self.next_accuracy = next_accuracy
        self.next_engagement = next_engagement
        self.dropped_out = dropped_out
        self.difficulty_delta = difficulty_delta

    def key(self) -> tuple:
        return (self.next_accuracy, self.next_engagement, self.dropped_out, self.difficulty_delta)


def simulate_window(rng, bank, learner, s, planned: int, action: str, ability_est: float, ideal):
    """Apply ``action`` to the session (with the ideal-action engagement bonus ±0.04), then run
    up to WINDOW answers (fewer when the session reaches ``planned`` answers or the learner
    drops out), all randomness from ``rng``; mutates ``learner`` and ``s``."""
    from learnops.data.simulate import _answer, _apply_action, _Rows

    delta = _apply_action(rng, action, ability_est, bank.modules, s)
    s.engagement = min(1.0, max(0.02, s.engagement + (0.04 if action == ideal else -0.04)))
    start, dropped, scratch = len(s.hist_c), False, _Rows()
    for _ in range(WINDOW):
        if s.n >= planned:
            break
        _answer(rng, bank, learner, s, scratch)
        if s.engagement < 0.4 and rng.random() < 0.04:  # the simulator's dropout rule
            dropped = True
            break
    after = s.hist_c[start:]
    acc = sum(after) / len(after) if after else None
    return _Window(acc, min(1.0, max(0.0, s.engagement)), dropped, delta)


def _deep_copy(state):
    """A deep copy of a simulator state dataclass (``_Learner``, ``_Session``), fast: a list of
    numbers is copied as a list, any other container deep-copied (scalars and datetimes are
    immutable). ``copy.deepcopy`` of the whole object costs ~4x more, a third of a run's CPU."""
    import copy
    import dataclasses

    out = copy.copy(state)
    for f in dataclasses.fields(state):
        v = getattr(state, f.name)
        if isinstance(v, list) and all(type(x) in (int, float) for x in v):
            setattr(out, f.name, list(v))
        elif isinstance(v, (list, dict, set)) or dataclasses.is_dataclass(v):
            setattr(out, f.name, copy.deepcopy(v))
    return out


def _run_learner(world: _World, api: _Api, j: int) -> _LearnerResult:
    """Learner ``j``: sessions until it made ``world.decisions`` decisions (or one failed)."""
    import math
    import random
    from datetime import UTC, datetime, timedelta

    from learnops.data.simulate import _answer, _new_learner, _Rows, _start_session
    from learnops.hashing import learner_hash

    cfg, bank = world.cfg, world.bank
    res = _LearnerResult(j)
    lid = f"traffic-{world.seed}-{j}"
    r = random.Random(_seed(world.seed, j))  # seeded simulation, not security  # nosec B311
    learner, pref_hour = _new_learner(r, cfg, learner_hash(lid), "")  # as the simulator's
    day, last_end = 0.0, None
    start = datetime(2026, 1, 5, tzinfo=UTC)
    made, stop, k = 0, False, 0
    rows = _Rows()
    max_sessions = 50 + 20 * world.decisions  # a safety net: sessions decide often enough
    try:
        while made < world.decisions and not stop and k < max_sessions:
            # the session as the simulator starts one (_simulate_learner, _run_session)
            day += r.expovariate(cfg.sessions_per_learner / cfg.days) if k else 0.0
            hour = min(23.5, max(0.0, r.gauss(pref_hour, 1.5)))
            t = start + timedelta(days=math.floor(day), hours=hour)
            if last_end is not None and t <= last_end:
                t = last_end + timedelta(hours=1)
            days_away = 30.0 if last_end is None else (t - last_end).total_seconds() / 86400.0
            planned, s = _start_session(r, cfg, bank, learner, k, t, days_away)
            pending: list[dict] = []
            while s.n < planned:
                _answer(r, bank, learner, s, rows)
                if s.engagement < 0.4 and r.random() < 0.04:
                    s.completed = False
                    break
                if made >= world.decisions or stop or s.n < 3 or s.n >= planned:
                    continue
                if r.random() >= 1.0 / cfg.decision_every:
                    continue
                row = _decide(world, api, j, lid, made, r, learner, s, planned, res)
                made += 1
                if row is None:
                    stop = True  # this learner makes no more decisions
                    continue
                pending.append(row)
                if row["_dropped"]:
                    s.completed = False
                    break
            session_ms = round((s.t - s.start).total_seconds() * 1000.0, 1)
            for row in pending:
                row["session_completed"] = s.completed
                row["total_session_time_ms"] = session_ms
                del row["_dropped"]
                _post_outcome(api, row, res)
            rows.responses.clear()
            rows.truth.clear()
            last_end = s.t
            k += 1
    except _Aborted:
        pass
    return res


def _decide(world, api, j, lid, i, r, learner, s, planned, res) -> dict | None:
    """Decision ``i`` of learner ``j``: /decide, then every action's window (common random
    numbers) and the served action's window on the real state; the truth row (None: failed)."""
    import random

    import numpy as np

    from learnops.contracts import ACTIONS, FEATURES
    from learnops.data.simulate import _features, teacher_logits

    x = _features(r, learner, s)
    feats = {f: float(x[f]) for f in FEATURES}
    logits = teacher_logits(np.array([[feats[f] for f in FEATURES]]))[0]
    ideal = ACTIONS[int(np.argmax(logits))]
    body = {"learner_id": lid, **feats}
    if world.claim_arm is not None:
        body["ab_group"] = world.claim_arm
    resp, why = api.post("/decide", body, idempotent=False)
    out = None
    if resp is not None:
        try:
            out = resp.json() if resp.status_code == 200 else None
        except ValueError:
            out = None
        if out is None:
            why = f"/decide: HTTP {resp.status_code} {_detail(resp)}"
        elif out.get("action") not in ACTIONS or not out.get("decision_id"):
            why, out = f"/decide: unexpected answer {str(out)[:200]}", None
    if out is None:
        res.decisions_failed += 1
        res.error(why)
        return None
    action = out["action"]
    wseed = _seed(world.seed, j, i)
    q: dict[str, object] = {}
    for a in ACTIONS:
        l2, s2 = _deep_copy(learner), _deep_copy(s)
        rng = random.Random(wseed)  # nosec B311
        q[a] = simulate_window(rng, world.bank, l2, s2, planned, a, feats["ability"], ideal)
    rng = random.Random(wseed)  # nosec B311
    real = simulate_window(rng, world.bank, learner, s, planned, action, feats["ability"], ideal)
    if real.key() != q[action].key():  # common random numbers: the realized path is one of them
        raise AssertionError("realized outcome differs from the served action's counterfactual")
    row: dict = {
        "decision_id": str(out["decision_id"]),
        "learner_hash": learner.lhash,
        "ab_test": out.get("ab_test"),
        "ab_group": out.get("ab_group"),
        "action": action,
        "propensity": out.get("propensity"),
        "explored": bool(out.get("explored") or False),
        "decided_by": out.get("decided_by"),
        **feats,
        **{f"q_{a}": q[a].next_engagement for a in ACTIONS},
        **{f"qa_{a}": q[a].next_accuracy for a in ACTIONS},
        "ideal_action": ideal,
        "next_accuracy": real.next_accuracy,
        "next_engagement": real.next_engagement,
        "session_completed": None,
        "total_session_time_ms": None,
        "confidence": out.get("confidence"),
        "model_version": out.get("model_version"),
        "decision_index": i,
        "outcome_posted": False,
        "_dropped": real.dropped_out,
    }
    res.rows.append(row)
    return row


def _post_outcome(api: _Api, row: dict, res: _LearnerResult) -> None:
    """POST the decision's outcome once (retried on 5xx; a repeat with equal values is fine)."""
    body = {
        k: row[k]
        for k in (
            "decision_id",
            "next_accuracy",
            "next_engagement",
            "session_completed",
            "total_session_time_ms",
        )
        if row[k] is not None
    }
    resp, why = api.post("/outcomes", body, idempotent=True)
    if resp is not None and resp.status_code == 200:
        row["outcome_posted"] = True
        res.outcomes_posted += 1
        return
    if resp is not None:
        why = f"/outcomes: HTTP {resp.status_code} {_detail(resp)}"
    res.outcomes_failed += 1
    res.error(why)
