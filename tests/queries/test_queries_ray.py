"""The Ray path (one task per dump file, merged on the driver) against in-process counting, and the
`wit queries build` command line on top of it."""

from __future__ import annotations

import argparse
import bz2
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from queries.build import build
from queries.schema import read_queries
from queries.cli import config_from_args, register
from queries.count import count_dumps, count_phrases, count_reference
from queries.dump import DumpUnit, plan_units
from queries.select import selectable_bigram
from core.errors import WitError


def test_ray_counts_equal_single_process(ray_local, demo) -> None:
    units = plan_units(demo.dumps, demo.stream_range_bytes)
    assert units == [DumpUnit(path) for path in demo.dumps]  # no index: one task per file
    on_ray = count_dumps(units, min_count=3, partitions=4, use_ray=True)
    local = count_dumps(units, min_count=3, partitions=4, use_ray=False)
    assert on_ray.unigrams == local.unigrams and on_ray.bigrams == local.bigrams
    assert on_ray.titles == local.titles and on_ray.stats == local.stats
    assert on_ray.stats.articles == 103  # both files contributed
    # the map-reduce keeps exactly the reference's selectable bigrams seen >= 3 times
    reference = count_reference(demo.dumps)
    assert on_ray.unigrams == reference.unigrams and on_ray.bigram_positions == reference.bigram_positions
    frequent = {p: c for p, c in reference.bigrams.items() if c >= 3 and selectable_bigram(p, True)}
    assert on_ray.bigrams == frequent and len(frequent) > 3_000
    # pass 2 (phrase counts) is compared through the whole build below
    found = count_phrases(units, ["united states", "constructive vote of no confidence"], use_ray=True)
    assert found["constructive vote of no confidence"] > 0 and found["united states"] > 100


def test_ray_build_equals_in_process_build(ray_local, demo, tmp_path) -> None:
    on_ray = build(demo, tmp_path / "ray.parquet", use_ray=True, progress=False)
    local = build(demo, tmp_path / "local.parquet", use_ray=False, progress=False)
    assert pq.read_table(on_ray).equals(pq.read_table(local))


def test_bad_file_inside_a_ray_task_is_a_user_error(ray_local, demo, tmp_path) -> None:
    truncated = tmp_path / "truncated.xml.bz2"
    truncated.write_bytes(Path(demo.dumps[0]).read_bytes()[:1_000_000])
    with pytest.raises(WitError, match=r"truncated\.xml\.bz2: the bz2 stream ends early"):
        count_dumps([DumpUnit(demo.dumps[1]), DumpUnit(str(truncated))], min_count=3, use_ray=True)


def _queries_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wit")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_help_teaches_inputs_and_outputs(capsys) -> None:
    with pytest.raises(SystemExit):
        _queries_parser().parse_args(["queries", "build", "--help"])
    text = capsys.readouterr().out
    for needle in ("--dump", "--wordnet", "queries.parquet", "query_id:int32", "examples:", "--demo"):
        assert needle in text


def test_options_override_the_demo_config(demo) -> None:
    args = _queries_parser().parse_args(["queries", "build", "--demo", "--out", "q.parquet",
                                         "--min-word-count", "7", "--max-titles", "3"])
    cfg = config_from_args(args)
    assert (cfg.dumps, cfg.min_word_count, cfg.max_titles, cfg.min_pmi) == (demo.dumps, 7, 3, demo.min_pmi)
    args = _queries_parser().parse_args(["queries", "build", "--out", "q.parquet"])
    with pytest.raises(WitError, match="needs --dump FILE"):
        config_from_args(args)


def test_wit_command_exit_codes(ray_local, demo, tmp_path, capsys) -> None:
    from wit.cli import main

    out = tmp_path / "queries.parquet"
    assert main(["queries", "build", "--demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "queries ->" in printed and "top 10: the (" in printed
    assert read_queries(out).num_rows > 10_000
    rss = tmp_path / "feed.xml"
    rss.write_text("<rss><channel/></rss>")
    assert main(["queries", "build", "--dump", str(rss), "--wordnet", demo.wordnet_dir,
                 "--out", str(tmp_path / "x.parquet")]) == 2
    assert "not a MediaWiki XML export" in capsys.readouterr().err
    assert main(["queries", "build", "--demo", "--wordnet", str(tmp_path), "--out", str(out)]) == 2
    # a multistream index that points past the end of its dump: exit 2, naming the index and offset
    dump = tmp_path / "x-pages-articles-multistream.xml.bz2"
    dump.write_bytes(Path(demo.dumps[1]).read_bytes())
    (tmp_path / "x-pages-articles-multistream-index.txt.bz2").write_bytes(bz2.compress(b"99999999:1:Far\n"))
    assert main(["queries", "build", "--dump", str(dump), "--wordnet", demo.wordnet_dir,
                 "--out", str(tmp_path / "y.parquet")]) == 2
    assert "offset 99999999 points past the end" in capsys.readouterr().err
    assert not list(tmp_path.glob("y.parquet*"))
