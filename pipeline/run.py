"""The whole pipeline in one call: pool + queries.parquet -> matched/ -> selected/ -> corpus/."""

from __future__ import annotations

from pathlib import Path

from pipeline.balance import balance
from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig
from pipeline.download import download
from pipeline.match import match


def run(
    pool: tuple[str, ...],
    queries_path: str,
    out_dir: str,
    match_cfg: MatchConfig = MatchConfig(),
    balance_cfg: BalanceConfig = BalanceConfig(),
    download_cfg: DownloadConfig = DownloadConfig(),
) -> dict:
    """match -> balance -> download into out_dir/{matched,selected,corpus}; returns each stage's result.

    Each stage reuses its finished output, so rerunning after an interruption resumes where it stopped.
    """
    root = Path(out_dir)
    matched = match(tuple(pool), queries_path, str(root / "matched"), match_cfg)
    selected = balance(str(root / "matched"), str(root / "selected"), balance_cfg)
    manifest = download(str(root / "selected"), str(root / "corpus"), download_cfg)
    return {"match": matched, "balance": selected, "download": manifest}
