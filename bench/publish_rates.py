"""Ship the measured rates with the package: copy the bench/results files `wit plan` reads, and the
cluster YAMLs its presets name, into wit/plan/data/ (package data), so an installed `wit plan` needs
no checkout. Run it after a bench rewrites a file the plan reads; tests/test_bench_results.py fails
while a shipped copy differs from its bench/results original.

    python bench/publish_rates.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import RESULTS  # noqa: E402
from wit.plan.config import PACKAGED_CLUSTERS  # noqa: E402
from wit.plan.rates import PUBLISHED, RESULTS_DIR  # noqa: E402

CLUSTERS = ROOT / "cluster"
PUBLISHED_CLUSTERS = ("aws.yaml", "gcp.yaml")          # the presets' ClusterPlan.config and the docs' example


def shipped() -> list[tuple[Path, Path]]:
    """(original, packaged copy) of every file `wit plan` reads."""
    return ([(RESULTS / name, RESULTS_DIR / name) for name in PUBLISHED]
            + [(CLUSTERS / name, PACKAGED_CLUSTERS / name) for name in PUBLISHED_CLUSTERS])


def main() -> None:
    for original, copy in shipped():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(original, copy)
        print(f"{original.relative_to(ROOT)} -> {copy.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
