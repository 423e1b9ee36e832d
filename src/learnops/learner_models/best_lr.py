"""Best-LR (Gervet, Koedinger, Schneider & Mitchell 2020): a logistic regression on IRT ability
and difficulty plus log-transformed counts of the learner's earlier successes and failures,
overall and in the answer's module.

Features of each answer (from the learner's earlier answers only): the static-IRT logit
a·(θ − b) (so that the model nests static IRT), θ (EAP from the earlier answers), the item's
difficulty b, log(1 + S), log(1 + F) overall, and per module a one-hot intercept,
log(1 + S_m) and log(1 + F_m). scikit-learn's L2 logistic regression (``C``) on a sparse design.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from learnops.learner_models.base import Prediction, Sequences, prepare, prior_counts

if TYPE_CHECKING:
    from learnops.learner_models.irt_static import StaticIrt

#: The dense columns of the design, before the 3·M module columns.
DENSE = ("irt_logit", "theta", "difficulty", "log_successes", "log_failures")


@dataclass
class BestLr:
    """Best-LR on top of a static IRT model (fitted with it when not given fitted)."""

    irt: StaticIrt
    C: float = 1.0
    name: str = "best_lr"
    fit_irt: bool = True
    """Fit ``irt`` on the training table in :meth:`fit` (False: it is fitted already)."""
    modules: pd.Index = field(default_factory=lambda: pd.Index([], dtype=str))
    coef: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))

    def columns(self) -> list[str]:
        """Names of the design's columns."""
        mods = list(self.modules)
        return [
            *DENSE,
            *(f"module[{m}]" for m in mods),
            *(f"log_successes[{m}]" for m in mods),
            *(f"log_failures[{m}]" for m in mods),
        ]

    def features(self, seq: Sequences) -> tuple:
        """(sparse design in sorted order, θ EAP, its SD) of every answer."""
        import scipy.sparse as sp

        from learnops.irt.scoring import item_params

        theta, se, items = self.irt.prefix_abilities(seq)
        params = item_params(self.irt._require().items)
        logit = params.a[items] * theta + params.d[items]
        difficulty = -params.d[items] / params.a[items]
        s, f = prior_counts(seq)
        sm, fm = prior_counts(seq, seq.module)
        dense = np.column_stack([logit, theta, difficulty, np.log1p(s), np.log1p(f)])
        m = self.modules.get_indexer(seq.module_ids)[seq.module]
        ok = m >= 0
        rows = np.flatnonzero(ok)
        k = len(self.modules)
        cols = len(DENSE) + np.concatenate([m[ok], k + m[ok], 2 * k + m[ok]])
        vals = np.concatenate([np.ones(rows.size), np.log1p(sm[ok]), np.log1p(fm[ok])])
        mod = sp.csr_matrix((vals, (np.tile(rows, 3), cols)), shape=(seq.n, len(DENSE) + 3 * k))
        x = sp.hstack([sp.csr_matrix(dense), mod[:, len(DENSE) :]], format="csr")
        return x, theta, se

    def design(self, responses: pd.DataFrame):
        """The sparse design of ``responses`` in sorted order, and the sorted 0/1 answers."""
        seq = prepare(responses)
        return self.features(seq)[0], seq.y.astype(float)

    def fit(self, responses: pd.DataFrame) -> BestLr:
        """Fit the IRT part (unless ``fit_irt`` is False), then the logistic regression."""
        from sklearn.linear_model import LogisticRegression

        if self.fit_irt:
            self.irt.fit(responses)
        seq = prepare(responses)
        self.modules = pd.Index(seq.module_ids)
        x, _, _ = self.features(seq)
        lr = LogisticRegression(C=self.C, solver="newton-cholesky", max_iter=200, tol=1e-8)
        lr.fit(x, seq.y.astype(int))
        self.coef = pd.Series(
            np.r_[lr.intercept_, lr.coef_[0]], index=["intercept", *self.columns()]
        )
        return self

    def predict(self, responses: pd.DataFrame) -> Prediction:
        """P(correct) of every row from the learner's earlier rows, and an ability on the θ
        scale: the EAP θ plus the learner's count terms divided by the model's slope on θ at
        the mean discrimination (the SE is the EAP's)."""
        from scipy.special import expit

        from learnops.irt.scoring import item_params

        seq = prepare(responses)
        x, theta, se = self.features(seq)
        w = self.coef.to_numpy(float)
        p = expit(w[0] + x @ w[1:])
        names = self.columns()
        learner_cols = [
            i for i, c in enumerate(names) if c.startswith(("log_successes", "log_failures"))
        ]
        learner_part = x[:, learner_cols] @ w[1:][learner_cols]
        mean_a = float(np.mean(item_params(self.irt._require().items).a))
        slope = self.coef["theta"] + self.coef["irt_logit"] * mean_a
        ability = theta + (learner_part / slope if abs(slope) > 1e-6 else 0.0)
        return Prediction(seq.unsort(p), seq.unsort(ability), seq.unsort(se))
