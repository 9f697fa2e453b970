"""The whole pipeline in one call: pool + queries.parquet -> matched/ -> selected/ -> corpus/."""

from __future__ import annotations

from pipeline.balance import balance
from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig
from pipeline.download import download
from pipeline.match import match
from wit import storage


def run(
    pool: tuple[str, ...],
    queries_path: str,
    out_dir: str,
    match_cfg: MatchConfig = MatchConfig(),
    balance_cfg: BalanceConfig = BalanceConfig(),
    download_cfg: DownloadConfig = DownloadConfig(),
) -> dict:
    """match -> balance -> download into out_dir/{matched,selected,corpus} (a local dir or a cloud URI);
    returns each stage's result.

    Each stage reuses its finished output, so rerunning after an interruption resumes where it stopped.
    """
    matched_dir, selected_dir = storage.join(out_dir, "matched"), storage.join(out_dir, "selected")
    matched = match(tuple(pool), queries_path, matched_dir, match_cfg)
    selected = balance(matched_dir, selected_dir, balance_cfg)
    manifest = download(selected_dir, storage.join(out_dir, "corpus"), download_cfg)
    return {"match": matched, "balance": selected, "download": manifest}
