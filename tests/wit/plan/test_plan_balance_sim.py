"""The balancing model against the real claim rule, the Zipf fit, and the plot."""

from collections import Counter

import numpy as np
import pytest

from pipeline.balance import claim
from core.errors import WitError
from bench.query_zipf import match_counts
from wit.plan.balance_sim import PairModel, fit_zipf, plot

K_DIST = {3: 10, 5: 20, 8: 10}          # captions by number of queries they hold


def zipf_pairs(n_queries: int, exponent: float, pairs: int, seed: int) -> dict[str, list[int]]:
    """Pairs drawn from the law the model assumes: k from K_DIST, k query ranks from Zipf, repeats collapse."""
    rng = np.random.default_rng(seed)
    p = np.arange(1, n_queries + 1, dtype=float) ** -exponent
    p /= p.sum()
    ks = rng.choice(list(K_DIST), size=pairs, p=np.array(list(K_DIST.values())) / sum(K_DIST.values()))
    return {f"key{i}": sorted(set(rng.choice(n_queries, size=k, p=p).tolist())) for i, k in enumerate(ks)}


@pytest.mark.parametrize("cap", [10, 30, 200])
def test_expected_selection_matches_the_real_claim_rule(cap):
    pairs = zipf_pairs(300, 1.0, 3000, seed=cap)
    selected = claim(pairs, cap, seed=0)
    claimed = Counter(q for qs in selected.values() for q in qs)
    assert max(claimed.values()) <= cap
    model = PairModel(300, 1.0, K_DIST, cap, sample=50_000, seed=1)
    assert model.selected(len(pairs)) == pytest.approx(len(selected), rel=0.05)
    matched = Counter(q for ids in pairs.values() for q in ids)
    assert model.matched_per_query(len(pairs))[0] == pytest.approx(matched[0], rel=0.1)


@pytest.mark.parametrize("cap", [5, 40, 400])
def test_a_measured_law_predicts_the_claim_rule_on_correlated_queries(cap):
    """Pairs whose queries come in fixed bundles (a caption template: colour + shape + background) break
    the independence PairModel assumes; the measured law uses the bundles themselves."""
    rng = np.random.default_rng(cap)
    bundles = [sorted(set(rng.choice(60, size=int(rng.integers(1, 6))).tolist())) for _ in range(40)]
    weights = np.arange(1, 41, dtype=float) ** -1.2
    drawn = rng.choice(40, size=4000, p=weights / weights.sum())
    pairs = {f"key{i}": bundles[b] for i, b in enumerate(drawn)}
    sample = Counter(tuple(pairs[f"key{i}"]) for i in range(2000))        # the law from half the pairs
    model = PairModel.measured([list(qs) for qs in sample], list(sample.values()), cap)
    assert model.selected(len(pairs)) == pytest.approx(len(claim(pairs, cap, seed=0)), rel=0.05)
    assert model.matched_per_query(len(pairs)).max() == pytest.approx(
        max(Counter(q for ids in pairs.values() for q in ids).values()), rel=0.1)


def test_claims_never_exceed_the_cap_and_head_is_cut():
    model = PairModel(50_000, 1.0, K_DIST, cap=1_000, sample=20_000)
    sim = model.summarize(5e6)
    assert sim.claimed_per_query.max() <= 1_000
    assert sim.saturated_queries > 0 and sim.tail_queries > 0
    assert sim.saturated_queries + sim.tail_queries + sim.unreached_queries == 50_000
    assert sim.selected < sim.candidates


def test_candidates_for_inverts_selected():
    model = PairModel(20_000, 0.9, K_DIST, cap=500, sample=20_000)
    for target in (1e5, 2e6):
        m = model.candidates_for(target)
        assert m >= target
        assert model.selected(m) == pytest.approx(target, rel=1e-3)


def test_a_target_beyond_queries_times_cap_is_an_error():
    model = PairModel(100, 1.0, K_DIST, cap=10, sample=5_000)
    with pytest.raises(WitError, match="select at most"):
        model.candidates_for(100 * 10 * 2)


@pytest.mark.parametrize("exponent", [0.8, 1.0, 1.3])
def test_fit_recovers_the_exponent_of_zipf_counts(exponent):
    counts = np.round(1e5 * np.arange(1, 2_001, dtype=float) ** -exponent)
    fit = fit_zipf(counts, min_count=2)
    assert fit.exponent == pytest.approx(exponent, abs=0.05)
    assert fit.r_squared > 0.95


def test_fit_refuses_too_little_data():
    with pytest.raises(WitError):
        fit_zipf([5, 1, 1])


def test_match_counts_uses_the_real_matcher():
    import pyarrow as pa

    queries = pa.table({"query_id": pa.array([0, 1, 2], pa.int32()), "query": ["cat", "black cat", "dog"]})
    per_query, per_caption = match_counts(["A black cat.", "a cat and a dog", "category"], queries)
    assert per_query == Counter({0: 2, 1: 1, 2: 1})
    assert per_caption == Counter({2: 2, 0: 1})      # "category" holds no whole-word query


def test_plot_writes_a_png(tmp_path):
    sim = PairModel(1_000, 1.0, K_DIST, cap=50, sample=5_000).summarize(2e4)
    out = plot(sim, tmp_path / "balance.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
