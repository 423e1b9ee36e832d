"""A/B tests: deterministic assignment, lifecycle, and learner-level analysis.

Names are imported lazily so that ``learnops.ab.cli`` stays light (no pandas/scipy at import).
"""

from __future__ import annotations

from learnops._lazy import lazy_exports

_EXPORTS = {
    "assign_group": "assign",
    "assign_groups": "assign",
    "bucket": "assign",
    "ABTest": "assign",
    "ABTestResult": "assign",
    "start_test": "assign",
    "analyze": "analysis",
    "learner_table": "analysis",
    "events_from_decisions": "analysis",
    "cumulative_effects": "analysis",
    "flat_metrics": "analysis",
    "welch_test": "stats",
    "two_proportion_test": "stats",
    "holm": "stats",
    "srm_test": "stats",
    "cuped_adjust": "stats",
    "cuped_theta": "stats",
    "mde": "stats",
    "sample_size": "stats",
    "power_two_sample": "stats",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
