"""Per-process memory of the pipeline stages as the data grows, from bench/scale.py's measurements.

bench/scale.py runs match, balance and download planning at several pool sizes (1M to 10M rows, the
paper's 500k queries) and records each stage's driver peak RSS and its largest Ray worker's peak
RSS. A `MemoryLaw` holds the smallest and the largest measurement of one process kind. When the
peak grew by at most BOUNDED_GROWTH over that range (issue #16's test of a process whose state is
per query or per partition: <= 1.3x from 1M to 10M rows), the plan takes the largest measured peak
at any size; otherwise it extrapolates the straight line through the two points to the plan's rows,
so a process that grows with the corpus shows growing in the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 2**20
SCALE_FILE = "scale.json"
BOUNDED_GROWTH = 1.3


@dataclass(frozen=True)
class MemoryLaw:
    stage: str
    process: str                     # "driver" or "largest worker"
    rows: tuple[float, float]        # the smallest and the largest measured input rows
    mib: tuple[float, float]         # peak RSS at those rows
    source: str

    @property
    def bounded(self) -> bool:
        return self.growth <= BOUNDED_GROWTH

    def bytes_at(self, rows: float) -> float:
        (r0, r1), (m0, m1) = self.rows, self.mib
        if self.bounded:
            return max(m0, m1) * MIB
        slope = (m1 - m0) / (r1 - r0) if r1 > r0 else 0.0
        return max(m0, m1, m0 + slope * (rows - r0)) * MIB

    @property
    def growth(self) -> float:
        """Peak at the largest measured size over the peak at the smallest."""
        return self.mib[1] / self.mib[0]


def memory_laws(scale: dict, source: str) -> dict[tuple[str, str], MemoryLaw]:
    """(stage, process) -> its law, from scale.json's figures.per_size."""
    per_size = scale["figures"]["per_size"]
    laws = {}
    for stage in ("match", "balance", "download"):
        points = sorted((run[stage]["rows"], run[stage]) for run in per_size.values() if stage in run)
        if len(points) < 2:
            continue
        (rows0, first), (rows1, last) = points[0], points[-1]
        # A worker's own memory: its private RSS when measured (VmHWM also counts the pages of Ray's
        # shared object store it touched, which grow with the worker's life up to the store's fixed size)
        worker_key = "largest_worker_private_mib" if "largest_worker_private_mib" in first else "largest_worker_peak_rss_mib"
        for process, key in (("driver", "driver_peak_rss_mib"), ("largest worker", worker_key)):
            laws[stage, process] = MemoryLaw(stage, process, (rows0, rows1), (first[key], last[key]),
                                             f"{source}: figures.per_size.*.{stage}.{key}")
    return laws
