"""Performance factors analysis (Pavlik, Cen & Koedinger 2009) with modules as skills.

logit P(correct) = β_m + γ_m·S_m + ρ_m·F_m, where m is the answer's module and S_m, F_m count the
learner's earlier successes and failures in that module. Fitted by scikit-learn's L2 logistic
regression (``C``) on a sparse design: one intercept, one success and one failure column per module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from learnops.learner_models.base import Prediction, Sequences, prepare, prior_counts


@dataclass
class Pfa:
    """PFA: per-module intercept, success slope and failure slope."""

    C: float = 1.0
    name: str = "pfa"
    coef: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Fitted β (``intercept``), γ (``success``) and ρ (``failure``) per module."""

    def design(self, seq: Sequences, modules: pd.Index):
        """Sparse design (rows in sorted order): [module one-hot | S_m | F_m], 3·M columns.
        Answers in a module unseen in fitting get an all-zero row (P = 0.5)."""
        import scipy.sparse as sp

        m = modules.get_indexer(seq.module_ids)[seq.module]
        s, f = prior_counts(seq, seq.module)
        ok = m >= 0
        rows = np.flatnonzero(ok)
        k = len(modules)
        cols = np.concatenate([m[ok], k + m[ok], 2 * k + m[ok]])
        vals = np.concatenate([np.ones(rows.size), s[ok], f[ok]])
        return sp.csr_matrix(
            (vals, (np.tile(rows, 3), cols)), shape=(seq.n, 3 * k), dtype=np.float64
        )

    def fit(self, responses: pd.DataFrame) -> Pfa:
        """Fit β, γ, ρ per module on ``responses``."""
        from sklearn.linear_model import LogisticRegression

        seq = prepare(responses)
        modules = pd.Index(seq.module_ids)
        lr = LogisticRegression(
            C=self.C, fit_intercept=False, solver="newton-cholesky", max_iter=200, tol=1e-8
        )
        lr.fit(self.design(seq, modules), seq.y.astype(int))
        w = lr.coef_[0]
        k = len(modules)
        self.coef = pd.DataFrame(
            {"intercept": w[:k], "success": w[k : 2 * k], "failure": w[2 * k :]},
            index=modules.rename("module"),
        )
        return self

    def predict(self, responses: pd.DataFrame) -> Prediction:
        """P(correct) of every row from the learner's earlier rows (no ability: NaN)."""
        from scipy.special import expit

        seq = prepare(responses)
        x = self.design(seq, pd.Index(self.coef.index))
        w = np.concatenate(
            [self.coef[c].to_numpy(float) for c in ("intercept", "success", "failure")]
        )
        p = expit(x @ w)
        nan = np.full(seq.n, np.nan)
        return Prediction(seq.unsort(p), nan, nan.copy())
