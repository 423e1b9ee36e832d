"""The EM engine reproduces, to 1e-10, fits recorded before it was split into modules.

Covers every code path of the engine: exact and Louis-block SEs, 2PL/3PL/1PL M-steps, dense and
sparse E-steps, and the float32 iterations with float64 polishing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from learnops import irt
from learnops.config import IrtConfig
from learnops.irt import estep
from learnops.irt.sim import simulate

DATA = Path(__file__).parent / "data"
PINNED = json.loads((DATA / "irt_pinned.json").read_text())
NO_PRIORS = IrtConfig(prior_a=None, prior_b=None, prior_c=None)
TOL = 1e-10


def _lsat7() -> pd.DataFrame:
    return pd.read_csv(DATA / "lsat7.csv", dtype={"learner_id": str, "item_id": str})


def _sparse_3pl() -> pd.DataFrame:
    return simulate(1500, 40, per_learner=12, model="3pl", seed=7).responses


CASES = {
    "lsat7_2pl": lambda: irt.fit(_lsat7(), "2pl", config=NO_PRIORS),
    "lsat7_2pl_louis": lambda: irt.fit(_lsat7(), "2pl", config=NO_PRIORS, se="louis-block"),
    "sparse_3pl": lambda: irt.fit(_sparse_3pl(), "3pl"),
    "dense_1pl_louis": lambda: irt.fit(
        simulate(800, 15, model="1pl", seed=4).responses, "1pl", se="louis-block"
    ),
    "dense_2pl_fast": lambda: irt.fit(simulate(1500, 30, seed=9).responses, "2pl"),
    "sparse_2pl_fast": lambda: irt.fit(_sparse_3pl(), "2pl", se="louis-block"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fit_matches_pinned_values(case, monkeypatch):
    if case.endswith("_fast"):  # float32 EM iterations, then float64 polishing
        monkeypatch.setattr(estep, "FAST_MIN_RESPONSES", 1)
    f = CASES[case]()
    want = PINNED[case]
    assert f.iterations == want["iterations"]
    assert f.loglik == pytest.approx(want["loglik"], rel=1e-12)
    for col, values in want.items():
        if col in f.items.columns:
            np.testing.assert_allclose(f.items[col], values, rtol=TOL, atol=TOL, err_msg=col)
    n = len(want["theta"])
    np.testing.assert_allclose(f.abilities["theta"][:n], want["theta"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(f.abilities["theta_se"][:n], want["theta_se"], rtol=TOL, atol=TOL)
    # every pinned item column is checked (none silently skipped)
    assert set(want) - set(f.items.columns) == {"loglik", "iterations", "theta", "theta_se"}
