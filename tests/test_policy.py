"""Logging-policy arithmetic: epsilon mixtures, the served action's propensity, target policies."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.policy import epsilon_greedy, mix_uniform, one_hot, serve_action


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.2, 1.0])
def test_deterministic_choice_propensities(eps):
    served = serve_action(random.Random(0), "take_break", eps)
    dist = dict(zip(ACTIONS, served.distribution, strict=True))
    assert dist["take_break"] == pytest.approx(1 - eps + eps / 5)
    for a in ACTIONS:
        if a != "take_break":
            assert dist[a] == pytest.approx(eps / 5)
    assert sum(served.distribution) == pytest.approx(1.0)
    assert served.propensity == pytest.approx(dist[served.action])
    cols = served.columns()
    assert set(cols) == {"propensity", "explored", *(f"p_{a}" for a in ACTIONS)}


def test_served_actions_follow_the_logged_distribution():
    """10 000 draws at ε = 0.2: action frequencies match the logged distribution (chi-square),
    the explored share is ε within a binomial 4σ, and the mean of 1/propensity is K = 5 (its
    expectation for any full-support logging policy) within 4 standard errors."""
    rng, eps, n = random.Random(7), 0.2, 10_000
    base = [0.5, 0.3, 0.1, 0.1, 0.0]
    draws = []
    for _ in range(n):
        choice = ACTIONS[rng.choices(range(5), weights=base)[0]]
        draws.append(serve_action(rng, choice, eps, base))
    expected = np.array(mix_uniform(base, eps)) * n
    counts = np.array([sum(d.action == a for d in draws) for a in ACTIONS])
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    explored = np.mean([d.explored for d in draws])
    assert abs(explored - eps) < 4 * np.sqrt(eps * (1 - eps) / n)
    inv = np.array([1 / d.propensity for d in draws])
    assert abs(inv.mean() - 5) < 4 * inv.std() / np.sqrt(n)
    for d in draws:  # the logged propensity is the distribution's probability of the action
        assert d.propensity == d.distribution[ACTIONS.index(d.action)]


def test_epsilon_zero_never_explores_and_epsilon_one_always_does():
    rng = random.Random(1)
    assert not any(serve_action(rng, "continue", 0.0).explored for _ in range(200))
    assert all(serve_action(rng, "continue", 1.0).explored for _ in range(200))


def test_epsilon_greedy_matches_mix_uniform_of_the_argmax():
    scores = np.array([[0.1, 0.7, 0.1, 0.05, 0.05], [0.3, 0.3, 0.2, 0.1, 0.1]])
    pi = epsilon_greedy(scores, 0.1)
    np.testing.assert_allclose(pi[0], mix_uniform(one_hot("adjust_difficulty"), 0.1))
    np.testing.assert_allclose(pi[1], mix_uniform(one_hot("continue"), 0.1))  # first max wins
    np.testing.assert_allclose(pi.sum(axis=1), 1.0)


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan"), "x"])
def test_bad_epsilon_is_refused(eps):
    with pytest.raises(LearnopsError, match="epsilon"):
        mix_uniform(one_hot("continue"), eps)


def test_bad_distributions_are_refused():
    with pytest.raises(LearnopsError, match="unknown action"):
        one_hot("nap")
    with pytest.raises(LearnopsError, match="5 probabilities"):
        mix_uniform([0.5, 0.5], 0.1)
    with pytest.raises(LearnopsError, match="all be 0"):
        mix_uniform([0, 0, 0, 0, 0], 0.1)
    with pytest.raises(LearnopsError, match="gives 0"):
        serve_action(random.Random(0), "continue", 0.0, [0, 1, 0, 0, 0])
