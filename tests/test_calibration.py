"""A small simulation-based calibration of every sampler path (bench/sbc.py), so that a broken
one fails CI; ``make calibrate`` runs the full version (200 replicates per kind, bench/CALIBRATION.md).

20 replicates per kind, each with parameters drawn from the fit's own explicit priors and data
simulated from them with numpy. Bounds, per parameter, with the chance that a calibrated sampler
misses each (seeds are fixed, so the test is deterministic; about 60 checks in all, so together
they raise a false alarm well under 1% of the time):

* the central 90% interval holds the truth in at least 12 of 20 replicates
  (Binomial(20, 0.9): P(X <= 11) = 6e-5);
* the central 50% interval in 2 to 18 of 20 (Binomial(20, 0.5): P(X <= 1 or X >= 19) = 4e-5);
* the mean normalised rank among 20 thinned draws within 0.5 +- 0.3 (its sd over 20 uniform
  ranks is 0.068: 4.4 sd, 1e-5).

These catch a broken path, not a subtle one (``make calibrate`` is for that): a posterior whose
mean is off by two posterior sds covers the truth with its 90% interval about 36% of the time and
has a mean rank near 0.08; one three times too narrow covers it about 42% of the time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from sbc import KINDS, rank_statistics, simulate_and_rank  # noqa: E402

REPLICATES, N_RANKS = 20, 20


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_sampler_path_is_calibrated(kind):
    results = [simulate_and_rank(KINDS[kind], 7_000 + i, n_ranks=N_RANKS, draws=200, tune=200)
               for i in range(REPLICATES)]
    table = rank_statistics(results, N_RANKS).set_index("parameter")
    assert len(table) == len([v for v in results[0].values() if isinstance(v, dict)])
    for name, row in table.iterrows():
        assert row["cover90"] >= 12 / 20, (kind, name, row.to_dict())
        assert 2 / 20 <= row["cover50"] <= 18 / 20, (kind, name, row.to_dict())
        assert abs(row["mean_rank"] - 0.5) <= 0.3, (kind, name, row.to_dict())


def test_rank_statistics_detect_a_biased_posterior():
    """The checks above can fail: ranks from a posterior shifted by one sd are caught."""
    from sbc import chi_square_p

    rng = np.random.default_rng(3)
    uniform = rng.integers(0, N_RANKS + 1, 200)
    truth = rng.normal(size=200)
    draws = rng.normal(size=(200, N_RANKS)) + truth[:, None] + 1.0  # one sd too high
    biased = (draws < truth[:, None]).sum(axis=1)
    assert chi_square_p(uniform, N_RANKS) > 0.01
    assert chi_square_p(biased, N_RANKS) < 1e-6
    assert biased.mean() / N_RANKS < 0.25
