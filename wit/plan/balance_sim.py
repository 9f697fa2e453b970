"""How many candidate pairs must be matched to select N pairs under a cap of t per query.

Query frequencies follow a Zipf-like law, p(rank r) ∝ r^-s, with s fitted on our own match results
(bench/query_zipf.py runs the real matcher over real COCO captions). A pair carries k queries (k drawn
from the measured distribution of queries per caption). Balancing (pipeline/balance.py) lets each
query q claim its t pairs of smallest hash h(seed, key); with c_q pairs containing q, a pair's hash
falls in q's claimed share with probability f_q = min(1, t / c_q). The hash is the same for every
query of a pair, so a pair is selected exactly when its hash is below the largest share among its
queries: P(selected) = max_q f_q. Expected selected pairs = M · E[max over the pair's queries of f_q],
estimated on a fixed sample of pairs, inverted over M by bisection. A pair's k queries are drawn
independently from the law; a repeat collapses (a pair holds a query once, as the matcher reports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from core.errors import WitError


@dataclass(frozen=True)
class ZipfFit:
    exponent: float                       # s in count ∝ rank^-s
    r_squared: float
    ranks_used: int                       # ranks whose count reached min_count
    min_count: int


def fit_zipf(counts: Iterable[int], min_count: int = 2) -> ZipfFit:
    """Least-squares slope of log(count) on log(rank) over the ranks seen at least `min_count` times
    (the singletons of a small sample are a flat floor, not the law)."""
    ranked = np.sort(np.asarray([c for c in counts if c >= min_count], dtype=float))[::-1]
    if ranked.size < 3:
        raise WitError(f"only {ranked.size} queries matched {min_count}+ times: too few to fit a Zipf law",
                       hint="match more caption text")
    x, y = np.log(np.arange(1, ranked.size + 1)), np.log(ranked)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    r2 = 1 - residual.var() / y.var() if y.var() > 0 else 1.0
    return ZipfFit(float(-slope), float(r2), int(ranked.size), min_count)


@dataclass(frozen=True)
class BalanceSim:
    queries: int
    cap: int
    exponent: float
    mean_queries_per_pair: float
    candidates: float                     # matched pairs M
    selected: float                       # expected selected pairs
    saturated_queries: int                # c_q > cap: the head, cut to cap
    reached_queries: int                  # c_q >= 1
    head_claims_share: float              # of all claims, the share made by saturated queries
    tail_queries: int                     # reached but below the cap: kept whole
    unreached_queries: int                # c_q < 1: no pair at all
    matched_per_query: np.ndarray         # c_q by rank (expected)
    claimed_per_query: np.ndarray         # min(c_q, cap)


class PairModel:
    """A fixed sample of pairs (their query ranks) for a Zipf law; evaluates selection at any M."""

    def __init__(self, queries: int, exponent: float, queries_per_pair: dict[int, int], cap: int,
                 sample: int = 100_000, seed: int = 0):
        if queries < 1 or cap < 1:
            raise WitError("queries and cap_per_query must be >= 1")
        k_values = np.array([k for k, n in queries_per_pair.items() if k > 0 and n > 0])
        k_weights = np.array([queries_per_pair[k] for k in k_values], dtype=float)
        if k_values.size == 0:
            raise WitError("no matched pair in the queries-per-pair distribution")
        self.queries, self.exponent, self.cap = queries, exponent, cap
        weights = np.arange(1, queries + 1, dtype=float) ** -exponent
        self.p = weights / weights.sum()                                # p_q by rank
        self.mean_k = float((k_values * k_weights).sum() / k_weights.sum())
        # P(q in a pair) = 1 - E_k[(1 - p_q)^k]: a pair's k draws may repeat a head query, which counts once.
        self.inclusion = 1 - ((k_weights / k_weights.sum())[:, None] * (1 - self.p)[None, :] ** k_values[:, None]).sum(0)
        rng = np.random.default_rng(seed)
        ks = rng.choice(k_values, size=sample, p=k_weights / k_weights.sum())
        cdf = np.cumsum(self.p)
        draws = np.searchsorted(cdf, rng.random((sample, int(ks.max()))) * cdf[-1])
        draws = np.minimum(draws, queries - 1)
        self.pairs = np.where(np.arange(ks.max())[None, :] < ks[:, None], draws, -1)   # [sample, k_max], -1 pad
        self.weights = np.full(sample, 1.0 / sample)                     # each sampled pair counts alike

    @classmethod
    def from_law(cls, law: dict, cap: int) -> "PairModel":
        """`measured` from bench/probe.py: query_law's lines ("pairs id id ...")."""
        rows = [[int(x) for x in line.split()] for line in law["pairs_and_query_ids"]]
        return cls.measured([r[1:] for r in rows], [r[0] for r in rows], cap)

    @classmethod
    def measured(cls, query_sets: list[list[int]], counts: list[int], cap: int) -> "PairModel":
        """The law as measured on a pool: its distinct sets of matched query ids, each with how many
        pairs carried it. No Zipf fit and no independence between a pair's queries: the pairs are the
        pool's own (bench/probe.py: query_law). Used where the pool is at hand (plans of the demo web)."""
        if not query_sets or cap < 1:
            raise WitError("a measured query law needs matched pairs, and cap_per_query >= 1")
        ids = sorted({q for qs in query_sets for q in qs})
        rank = {q: r for r, q in enumerate(ids)}
        width = max(len(qs) for qs in query_sets)
        model = cls.__new__(cls)
        model.queries, model.cap = len(ids), cap
        model.pairs = np.array([[rank[q] for q in qs] + [-1] * (width - len(qs)) for qs in query_sets])
        model.weights = np.asarray(counts, float) / float(sum(counts))
        hits = np.zeros(len(ids))
        np.add.at(hits, model.pairs[model.pairs >= 0],
                  np.broadcast_to(model.weights[:, None], model.pairs.shape)[model.pairs >= 0])
        order = np.argsort(-hits, kind="stable")                        # ranks: most matched first
        model.pairs = np.where(model.pairs >= 0, np.argsort(order)[np.maximum(model.pairs, 0)], -1)
        model.inclusion = hits[order]                                   # share of pairs holding the query
        model.p = model.inclusion / model.inclusion.sum()
        model.mean_k = float((model.weights * (model.pairs >= 0).sum(axis=1)).sum())
        model.exponent = fit_zipf(model.inclusion * sum(counts), min_count=1).exponent if len(ids) >= 3 else 0.0
        return model

    def matched_per_query(self, candidates: float) -> np.ndarray:
        """c_q: expected pairs containing query q (by rank) among `candidates` matched pairs."""
        return candidates * self.inclusion

    def selected(self, candidates: float) -> float:
        share = np.minimum(1.0, self.cap / np.maximum(self.matched_per_query(candidates), 1e-12))
        padded = np.append(share, 0.0)                                  # index -1 -> share 0
        return float(candidates * (padded[self.pairs].max(axis=1) * self.weights).sum())

    def candidates_for(self, target: float) -> float:
        """The matched pairs M whose expected selection is `target` (bisection on log M)."""
        if target <= 0:
            return 0.0
        low, high = float(target), float(target) * 2
        while self.selected(high) < target:
            if high > target * 1e6:
                ceiling = self.selected(high)
                raise WitError(f"{self.queries:,} queries capped at {self.cap:,} select at most ~{ceiling:,.0f} "
                               f"pairs, not {target:,.0f}", hint="raise queries or cap_per_query, or lower target_pairs")
            low, high = high, high * 2
        for _ in range(60):
            mid = (low * high) ** 0.5
            low, high = (mid, high) if self.selected(mid) < target else (low, mid)
            if high / low < 1.0001:
                break
        return high

    def summarize(self, candidates: float) -> BalanceSim:
        matched = self.matched_per_query(candidates)
        claimed = np.minimum(matched, self.cap)
        head = matched > self.cap
        return BalanceSim(
            queries=self.queries, cap=self.cap, exponent=self.exponent, mean_queries_per_pair=self.mean_k,
            candidates=candidates, selected=self.selected(candidates), saturated_queries=int(head.sum()),
            reached_queries=int((matched >= 1).sum()),
            head_claims_share=float(claimed[head].sum() / claimed.sum()) if claimed.sum() else 0.0,
            tail_queries=int(((matched >= 1) & ~head).sum()), unreached_queries=int((matched < 1).sum()),
            matched_per_query=matched, claimed_per_query=claimed)


def plot(sim: BalanceSim, out: str | Path, title: str = "") -> Path:
    """Per-query pair counts by rank, before (matched) and after (claimed) balancing, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ranks = np.arange(1, sim.queries + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.loglog(ranks, np.maximum(sim.matched_per_query, 1e-3), label="matched (before balancing)")
    ax.loglog(ranks, np.maximum(sim.claimed_per_query, 1e-3), label=f"claimed (after, cap {sim.cap:,})")
    ax.axhline(sim.cap, color="gray", linestyle=":", linewidth=1)
    ax.axvline(max(sim.saturated_queries, 1), color="tab:red", linestyle="--", linewidth=1,
               label=f"{sim.saturated_queries:,} head queries saturated")
    ax.set_ylim(bottom=0.5)
    ax.set_xlabel("query rank")
    ax.set_ylabel("pairs per query")
    facts = f"{sim.candidates:,.0f} matched -> {sim.selected:,.0f} selected (Zipf s={sim.exponent:.2f})"
    ax.set_title(f"{title}: {facts}" if title else facts, fontsize=10)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
