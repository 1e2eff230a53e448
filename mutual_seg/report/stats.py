"""Paired statistics the paper does not give: is one modality set better than another on the same subjects?

Convention (one pure function, as in ``metrics.py``): the difference is ``b - a`` per subject (arm B minus
arm A, e.g. FLAIR + T2w minus FLAIR), so a positive mean difference in Dice means B segments better, and a
positive one in Hd means B is further off.

- ``scipy.stats.wilcoxon(b, a)``: paired Wilcoxon signed-rank test, two-sided; zero differences are
  dropped (``zero_method="wilcox"``, scipy's default); exact p for small samples without ties, else the
  normal approximation (scipy's ``method="auto"``).
- ``scipy.stats.bootstrap``: 95 % confidence interval of the MEAN paired difference, BCa, 9999 resamples,
  seeded, so the interval is reproducible.
Both need at least two pairs; with fewer, or when every difference is 0, the p-value and the interval are
NaN (nothing to test) rather than an error.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

N_RESAMPLES = 9999
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedComparison:
    """One metric compared between two arms over the same subjects (``diff = b - a``)."""

    metric: str
    n_pairs: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float


def paired_comparison(metric: str, a: Sequence[float], b: Sequence[float], seed: int = 0,
                      n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> PairedComparison:
    """Wilcoxon signed-rank test and bootstrap CI of the mean difference of paired values.

    Args:
        metric: name, carried into the result.
        a: values of arm A, one per subject, [N].
        b: values of arm B for the same subjects in the same order, [N].
        seed: of the bootstrap's random generator.
        n_resamples: bootstrap resamples.
        confidence: of the interval.

    Returns:
        The comparison; p-value and interval are NaN when fewer than two pairs differ.

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired values need equal lengths, got {a_arr.size} and {b_arr.size}")
    diff = b_arr - a_arr
    n = int(diff.size)
    nan = math.nan
    mean = (lambda x: float(np.mean(x)) if x.size else nan)
    statistic = p_value = low = high = nan
    if n >= 2 and np.any(diff != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns about ties/small samples; the method it picks is documented above
            test = stats.wilcoxon(b_arr, a_arr)
            statistic, p_value = float(test.statistic), float(test.pvalue)
            interval = stats.bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                       random_state=np.random.default_rng(seed)).confidence_interval
            low, high = float(interval.low), float(interval.high)
    return PairedComparison(metric, n, mean(a_arr), mean(b_arr), mean(diff), low, high, statistic, p_value)
