"""Learner models that learn, next to static IRT: predict each next answer from the learner's
past (Elo, PFA, Best-LR and static IRT with θ re-estimated before every answer).

Every model has one interface (:class:`~learnops.learner_models.base.LearnerModel`): ``fit`` on
a response table, then ``predict`` P(correct) of every row of a table from the same learner's
earlier rows only (plus, when the model has one, the ability estimate before that row).
:mod:`~learnops.learner_models.compare` is the evaluation protocol (temporal and
held-out-learner splits, learner-bootstrap intervals, paired differences with static IRT).

- ``base``        sequences (learner, time order), prior counts, ``Prediction``
- ``irt_static``  static IRT: item parameters from ``learnops.irt``, cumulative EAP θ
- ``elo``         Elo with the uncertainty step K(n) = alpha / (1 + beta·n), tuned on validation
- ``pfa``         performance factors analysis per module
- ``best_lr``     Best-LR: IRT θ and b plus log counts, scikit-learn on a sparse design
- ``compare``     splits, metrics with intervals, reliability, comparison with the truth
- ``plots``       the report's figures
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnops._lazy import lazy_exports

if TYPE_CHECKING:
    from learnops.learner_models.base import LearnerModel, Prediction, prepare
    from learnops.learner_models.best_lr import BestLr
    from learnops.learner_models.elo import Elo
    from learnops.learner_models.irt_static import StaticIrt
    from learnops.learner_models.pfa import Pfa

__all__ = ["BestLr", "Elo", "LearnerModel", "Pfa", "Prediction", "StaticIrt", "prepare"]

_WHERE = {
    "LearnerModel": "base",
    "Prediction": "base",
    "prepare": "base",
    "BestLr": "best_lr",
    "Elo": "elo",
    "StaticIrt": "irt_static",
    "Pfa": "pfa",
}

__getattr__ = lazy_exports(__name__, _WHERE)
