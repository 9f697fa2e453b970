"""The whole pipeline on a tiny pool served from 127.0.0.1, then `wit inspect` on every artifact."""

from __future__ import annotations

import json

import pytest

from pipeline.run import run
from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig
from pipeline.inspect import format_summary, summarize
from tests.pipeline.helpers import SMALL_IMAGES, cat_pool, cat_web
from wit.cli import main
from core.loopback import LoopbackServer



@pytest.mark.slow
def test_run_then_inspect(ray_local, tmp_path, capsys):
    with LoopbackServer(cat_web) as server:
        queries, pool = cat_pool(tmp_path, server.url)
        result = run(
            (pool,),
            queries,
            str(tmp_path / "work"),
            MatchConfig(),
            BalanceConfig(cap_per_query=5),
            DownloadConfig(image_size=32, timeout_s=2, thread_count=4, allow_networks=("127.0.0.0/8",)),
        )
    counts = result["download"]["counts"]
    # 15 pool rows; 14 matched (mailto dropped); cat claims 5 of 12, dog and red car claim all theirs.
    assert counts == {"pool": 15, "matched": 14, "selected": 7, "downloaded": 6, "failed": 1}
    assert result["download"]["failures"] == {"http_404": 1}

    work = tmp_path / "work"
    corpus = summarize(str(work / "corpus"))
    assert corpus["kind"] == "corpus" and corpus["rows"] == 6 and corpus["failures"] == 1
    assert corpus["success_rate"] == round(6 / 7, 4)
    assert corpus["width"]["min"] == 43 and corpus["height"]["max"] == 32  # 120x90 -> shorter side 32
    assert all("jpg" not in row and row["jpg_bytes"] > 0 for row in corpus["samples"])
    selected = summarize(str(work / "selected"))  # queries.parquet found two levels up, names the queries
    assert selected["kind"] == "selected" and selected["rows"] == 7
    top = {row["query"]: row["pairs"] for row in selected["per_query"]["top"]}
    assert top == {"cat": 5, "dog": 2, "red car": 1}
    assert summarize(str(work / "matched"))["per_query"]["queries"] == 3
    assert summarize(queries)["kind"] == "queries"
    assert summarize(str(work / "corpus" / "failures"))["failure_reasons"] == {"http_404": 1}
    assert "success rate" in format_summary(corpus)
    failures = summarize(str(work / "corpus" / "failures"))
    assert failures["kind"] == "failures" and failures["rows"] == 1

    sheet = tmp_path / "sheet.html"
    assert main(["inspect", str(work / "corpus"), "--html", str(sheet), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["html"] == str(sheet)
    page = sheet.read_text()
    assert page.count('<img src="data:image/jpeg;base64,') == 6  # one thumbnail per stored image
    assert "queries: cat" in page and "a cat number" in page  # query names from queries.parquet
    assert main(["inspect", str(work / "corpus" / "failures"), "--html", str(sheet)]) == 0
    assert "http_404" in sheet.read_text() and "contact sheet:" in capsys.readouterr().out

    assert main(["inspect", str(work / "selected"), "--json", "-n", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"] == 7 and len(printed["samples"]) == 2
    assert main(["inspect", str(tmp_path / "nothing")]) == 2  # a WitError, exit code 2
    # A rerun through the CLI reuses every finished stage.
    assert (
        main(
            [
                "pipeline",
                "run",
                pool,
                "--queries",
                queries,
                "--out",
                str(work),
                "--cap",
                "5",
                *SMALL_IMAGES,
            ]
        )
        == 0
    )


def test_help_explains_each_subcommand(capsys):
    for argv in (
        ["pipeline", "match"],
        ["pipeline", "balance"],
        ["pipeline", "download"],
        ["pipeline", "run"],
        ["inspect"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--help"])
        assert exit_.value.code == 0
        assert "example" in capsys.readouterr().out
