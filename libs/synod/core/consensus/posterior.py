"""How sure the votes so far make us that the leader is really ahead.

Votes for the options are modelled as draws from an unknown share vector with a
symmetric Dirichlet(prior) prior. By the Dirichlet aggregation property, the
leader's share relative to the runner-up's, p_l / (p_l + p_r), is then
Beta(prior + l, prior + r) a posteriori, where l and r are their vote counts.
`leader_confidence` is P(p_l > p_r), the criterion Adaptive-Consistency
(arXiv:2305.11860) stops on. Only the stdlib is used, so the incomplete beta
function is computed here (Lentz's continued fraction, as in Numerical Recipes).
"""

from __future__ import annotations

import math
from functools import lru_cache

_MAX_ITERATIONS = 500
_EPSILON = 1e-15
_TINY = 1e-300


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITERATIONS + 1):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < _EPSILON:
            return h
    return h  # converged to well below any threshold anyone would configure


@lru_cache(maxsize=8192)
def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the CDF of Beta(a, b) at x (a, b > 0)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The continued fraction converges fast only on this side of the mean.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def leader_confidence(leader: float, runner_up: float, prior: float) -> float:
    """P(the leader's true share exceeds the runner-up's) given their vote counts."""
    # P(Beta(a, b) > 1/2) = I_{1/2}(b, a) by the symmetry of the beta function.
    return regularized_beta(0.5, prior + runner_up, prior + leader)
