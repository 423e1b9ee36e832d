"""The EM engine reproduces fits recorded before it was split into modules.

Covers every code path of the engine: exact and Louis-block SEs, 2PL/3PL/1PL M-steps, dense and
sparse E-steps, and the float32 iterations with float64 polishing.

The last bits of a fit depend on the CPU and the numeric libraries' kernels for it (FBGEMM's
embedding bags and MKL pick AVX-512 or AVX2 code, OpenBLAS a kernel per CPU family), so
``tests/data/irt_pinned.json`` holds one set of values per host (``hostpins.host_key``):

- on a host that has its own set, every value must match it to 1e-10 (any change to the
  numbers, beyond summation order, fails); on a host without one, one of the sets must match to
  1e-10 if any does;
- every set is also checked on every host at the tolerances two CPUs are known to differ by:
  float64 fits 1e-8 (their central-difference SEs 1e-7: the differences' rounding over
  h = 1e-5), and the float32 iterations EM's parameter tolerance, 1e-4 (their sums round
  differently, so EM stops at another point within it). Measured between the two recorded hosts:
  1.0e-10 (estimates), 1.1e-9 (central-difference SEs), 9.8e-6 (float32 cases).

``python tests/test_irt_pinned.py --record`` adds (or replaces) the current host's set and
drops the sets that no longer agree with it (stale after a change of the numbers).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hostpins import LEGACY, host_key, match_recorded, record_here

from learnops import irt
from learnops.config import IrtConfig
from learnops.io import write_text
from learnops.irt import estep
from learnops.irt.sim import simulate

DATA = Path(__file__).parent / "data"
PINNED_FILE = DATA / "irt_pinned.json"
PINNED = json.loads(PINNED_FILE.read_text())
NO_PRIORS = IrtConfig(prior_a=None, prior_b=None, prior_c=None)
TOL = 1e-10  # on the host that recorded the values
CROSS_HOST = {"float64": 1e-8, "central_difference_se": 1e-7, "float32": 1e-4}


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
#: cases whose SEs come from the central-difference Hessian (``se="exact"``, chosen by ``auto``)
CENTRAL_DIFFERENCE_SE = {"lsat7_2pl", "sparse_3pl"}


def _fit(case: str, monkeypatch: pytest.MonkeyPatch):
    if case.endswith("_fast"):  # float32 EM iterations, then float64 polishing
        monkeypatch.setattr(estep, "FAST_MIN_RESPONSES", 1)
    return CASES[case]()


def _values(f) -> dict:
    """What is pinned of a fit: loglik, iterations, item columns, the first 20 abilities."""
    out = {"loglik": f.loglik, "iterations": f.iterations}
    out.update({c: f.items[c].tolist() for c in f.items.columns if c != "item_id"})
    out.update({c: f.abilities[c][:20].tolist() for c in ("theta", "theta_se")})
    return out


def _compare(case: str, got: dict, want: dict, same_host: bool) -> None:
    """Every pinned value of ``want`` against ``got``: to 1e-10 on the recording host, else at
    the cross-host tolerance of the case's kind of arithmetic."""
    fast = case.endswith("_fast")
    if same_host:
        tol = {c: TOL for c in want}
        assert got["iterations"] == want["iterations"]
        assert got["loglik"] == pytest.approx(want["loglik"], rel=1e-12)
    else:
        base = CROSS_HOST["float32" if fast else "float64"]
        tol = {c: base for c in want}
        if case in CENTRAL_DIFFERENCE_SE:
            tol.update({c: CROSS_HOST["central_difference_se"] for c in want if c.endswith("_se")})
        # the float32 phase may stop an iteration or two apart; float64 EM never does
        assert abs(got["iterations"] - want["iterations"]) <= (2 if fast else 0)
        assert got["loglik"] == pytest.approx(want["loglik"], rel=1e-9 if fast else 1e-12)
    for col in set(want) - {"loglik", "iterations"}:
        np.testing.assert_allclose(got[col], want[col], rtol=tol[col], atol=tol[col], err_msg=col)
    # every pinned column is checked (none silently skipped)
    assert set(want) <= set(got)


@pytest.mark.parametrize("case", list(CASES))
def test_fit_matches_pinned_values(case, monkeypatch):
    got = _values(_fit(case, monkeypatch))
    hosts = PINNED["hosts"]
    # this host's own set to 1e-10 (on a host without one: any set to 1e-10, if one matches)
    match_recorded(hosts, lambda values: _compare(case, got, values[case], same_host=True))
    for values in hosts.values():  # and every recorded set at the cross-host tolerances
        _compare(case, got, values[case], same_host=False)


def test_recorded_sets_agree_across_hosts():
    """The recorded hosts' values differ by no more than the cross-host tolerances (and by
    something: the sets are real recordings, not copies)."""
    sets = list(PINNED["hosts"].values())
    if len(sets) < 2:
        pytest.skip("one host recorded (the others were dropped as stale): nothing to compare")
    for case in CASES:
        for other in sets[1:]:
            _compare(case, other[case], sets[0][case], same_host=False)
    assert any(other != sets[0] for other in sets[1:])


def test_the_legacy_set_is_never_a_host_s_own():
    assert LEGACY in PINNED["hosts"] and host_key() != LEGACY


def _record() -> None:
    """Fit every case on this host and store its values under ``host_key()``; drop the sets of
    other hosts that no longer agree with them at the cross-host tolerances (recorded before a
    change of the numbers: stale)."""
    values = {}
    for case in CASES:
        with pytest.MonkeyPatch.context() as mp:
            values[case] = _values(_fit(case, mp))

    def agree(other: dict, new: dict) -> None:
        for case in CASES:
            _compare(case, other[case], new[case], same_host=False)

    PINNED["hosts"] = record_here(PINNED["hosts"], values, agree)
    write_text(PINNED_FILE, json.dumps(PINNED, indent=1) + "\n")
    print(f"recorded {len(values)} cases for {host_key()}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_irt_pinned.py --record")
    _record()
