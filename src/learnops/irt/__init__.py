"""Item response theory: MML/EM estimation (1PL/2PL/3PL), scoring, heuristic baseline.

Public API (imported lazily so that ``learnops --help`` stays fast):
``fit``, ``load``, ``IrtFit``, ``score``, ``evaluate_predictions``, ``partition_responses``,
``fit_partitioned``.

Modules, laid out like R mirt's estimation engine:

- ``data``     response-table validation and integer encoding (``Encoded``)
- ``params``   item parameterization (a, d[, g]), priors' hyper-parameters, bounds, packing
- ``estep``    E-step: posterior over quadrature nodes, expected counts, EAP abilities
- ``mstep``    M-step: per-item Fisher scoring of the expected complete-data log posterior, priors
- ``em``       the EM loop: start values, SQUAREM, convergence, float32 → float64 polishing
- ``parallel`` learner shards (stable hash) and the engines that run the E-step over them:
                threads (``local``) or a Dask cluster (``dask``); identical results for any
                number of workers
- ``se``       standard errors: exact numerical Hessian, the exact per-learner Louis information
                (``louis-exact``: repeats and cross-item blocks included) or, for very many
                items, the per-item approximation (``louis-block``)
- ``scoring``  EAP/MAP abilities against fixed item parameters
- ``partitioned`` a response table written as a Parquet dataset partitioned by learner hash
                (``partition_responses``), and its fit where every worker reads its own
                partitions (``fit_partitioned``)
- ``model``    ``fit``/``load``/``IrtFit`` (persistence, prediction) and the heuristic baseline
- ``sim``      simulated responses; ``plots`` figures; ``cli`` the ``learnops irt`` commands
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnops._lazy import lazy_exports

if TYPE_CHECKING:
    from learnops.irt.data import evaluate_predictions
    from learnops.irt.model import IrtFit, fit, load
    from learnops.irt.partitioned import fit_partitioned, partition_responses
    from learnops.irt.scoring import score

__all__ = [
    "IrtFit",
    "evaluate_predictions",
    "fit",
    "fit_partitioned",
    "load",
    "partition_responses",
    "score",
]

_WHERE = {
    "fit": "model",
    "load": "model",
    "IrtFit": "model",
    "score": "scoring",
    "fit_partitioned": "partitioned",
    "partition_responses": "partitioned",
    "evaluate_predictions": "data",
}


__getattr__ = lazy_exports(__name__, _WHERE)
