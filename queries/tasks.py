"""Running pass 1 and 2 over the dump units: in this process or as Ray tasks, with one progress bar
on the driver (compressed bytes done, pages, decompressed MB/s), updated as each unit finishes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tqdm import tqdm

from queries.dump import DumpStats, DumpUnit
from core import storage
from core.errors import WitError


class Progress:
    """A driver-side bar over the units: compressed bytes done, pages and decompressed MB/s."""

    def __init__(self, units: Sequence[DumpUnit], desc: str, enabled: bool) -> None:
        sizes = [(u.end - u.start) if u.is_range else storage.size(u.path) for u in units]
        self.bar = tqdm(total=sum(sizes), unit="B", unit_scale=True, desc=desc, disable=not enabled)
        self.stats = DumpStats()
        self.started = time.monotonic()

    def done(self, stats: DumpStats) -> None:
        self.stats.merge(stats)
        seconds = max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix(pages=f"{self.stats.pages:,}", xml=f"{self.stats.xml_bytes / seconds / 1e6:.1f}MB/s",
                             refresh=False)
        self.bar.update(stats.compressed_bytes)

    def close(self) -> None:
        self.bar.close()


def run_local(fn: Callable[..., Any], units: Sequence[DumpUnit], args: tuple, stats_of: Callable[[Any], DumpStats],
              desc: str, progress: bool) -> list[Any]:
    """`fn(unit, *args)` for every unit in this process; `stats_of(result)` feeds the bar."""
    bar = Progress(units, desc, progress)
    results = []
    for unit in units:
        results.append(fn(unit, *args))
        bar.done(stats_of(results[-1]))
    bar.close()
    return results


def gather(refs: list[Any], units: Sequence[DumpUnit], stats_of: Callable[[Any], DumpStats], desc: str,
           progress: bool) -> Iterator[Any]:
    """Results of `refs` (one per unit) in unit order, for merging; the bar moves as each finishes."""
    import ray

    bar = Progress(units, desc, progress)
    order = {ref: i for i, ref in enumerate(refs)}
    finished: dict[int, Any] = {}
    pending, next_index = list(refs), 0
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            (result,) = wit_errors(ray.get, ready)
            bar.done(stats_of(result))
            finished[order[ready[0]]] = result
            while next_index in finished:  # merge in unit order: the same order on every run
                yield finished.pop(next_index)
                next_index += 1
    finally:
        bar.close()


def wit_errors(get: Callable[[Any], Any], refs: Any) -> Any:
    """`ray.get`, with a bad input file reported as the WitError it is, not a remote traceback."""
    import ray

    try:
        return get(refs)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, WitError):
            raise err.cause from None
        raise
