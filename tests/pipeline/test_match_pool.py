"""Pool readers (headerless TSV, malformed lines, WARC) and match's independence of the actor layout."""

from __future__ import annotations

import glob
from io import BytesIO

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.config import MatchConfig, PoolConfig
from pipeline.match import match, match_batch_rows, pool_text_bytes, url_problem
from pipeline.warc import images_in_html, read_warc
from tests.pipeline.helpers import write_pool, write_queries
from core.errors import WitError

QUERIES = ["cat", "dog", "red panda", "lighthouse"]


def read_matched(out_dir) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{out_dir}/part-*.parquet"))])


def test_url_validation():
    ok = [
        "http://e.org",
        "HTTPS://e.org/a b".replace(" ", "%20"),
        "http://u:p@e.org:8080/x?y#z",
        "http://[::1]/a",
    ]
    assert [url_problem(u, 2048) for u in ok] == [None] * len(ok)
    bad = [
        "ftp://e.org/a.jpg",
        "//e.org/a.jpg",
        "/a.jpg",
        "http://",
        "http:///a.jpg",
        "http://:80/a",
        "http://e.org/a b.jpg",
        "http://e.org/a\u00a0b.jpg",  # a no-break space is whitespace too
        "http://[::1/a",
        "javascript:alert(1)",
        None,
        "",
    ]
    assert [url_problem(u, 2048) for u in bad] == ["invalid_url"] * len(bad)
    assert url_problem("http://e.org/" + "x" * 100, 50) == "url_too_long"


def test_headerless_tsv_and_malformed_lines_are_counted(ray_local, tmp_path):
    queries = write_queries(tmp_path / "queries.parquet", QUERIES)
    # Conceptual Captions layout: caption<TAB>url, no header, raw quotes in captions.
    (tmp_path / "cc.tsv").write_text(
        'a "cat" on a sofa\thttp://e.org/1.jpg\n'
        "a red panda in a tree\thttp://e.org/2.jpg\n"
        "one field only\n"  # malformed: 1 field
        "a dog\thttp://e.org/3.jpg\textra\n"  # malformed: 3 fields
        "\n"  # empty lines are not rows
        "a lighthouse at dusk\thttp://e.org/4.jpg\n"
        "a mouse\thttp://e.org/5.jpg\n"  # no_match
    )
    (tmp_path / "h.csv").write_text("url,caption\nhttp://e.org/6.jpg,a dog\nhttp://e.org/7.jpg,a,b\n")
    stats = match((str(tmp_path / "cc.tsv"), str(tmp_path / "h.csv")), queries, str(tmp_path / "m"))
    assert stats["input_rows"] == 8
    assert stats["dropped"]["malformed_row"] == 3
    assert stats["dropped"]["no_match"] == 1
    got = {r["url"]: (r["text"], r["query_ids"]) for r in read_matched(tmp_path / "m").to_pylist()}
    assert got == {
        "http://e.org/1.jpg": ('a "cat" on a sofa', [0]),
        "http://e.org/2.jpg": ("a red panda in a tree", [2]),
        "http://e.org/4.jpg": ("a lighthouse at dusk", [3]),
        "http://e.org/6.jpg": ("a dog", [1]),
    }
    # Columns of a headerless file are f0, f1, ...; naming the wrong one is a clear error.
    with pytest.raises(WitError, match=r"no url column \(looked for f5\).*\['f0', 'f1'\]"):
        match(
            (str(tmp_path / "cc.tsv"),),
            queries,
            str(tmp_path / "x"),
            MatchConfig(pool=PoolConfig(url_col="f5")),
        )


PAGE_A = b"""<!doctype html><html><head><title>Zoo</title><base href="/animals/"></head><body>
<p>Our <b>animals</b>: <img src="cat.jpg" alt="A cat &amp; her kitten"><br>
<IMG SRC='https://cdn.e.org/panda.png' ALT='Red Panda'/>
<img src="data:image/png;base64,AAAA" alt="a dog inline">
<img src="../logo.gif">
<img alt="no source cat">
<div><img src="//img.e.org/lh.jpg" alt="lighthouse"></div>
"""  # unclosed tags: the parser keeps what it found
PAGE_B = "<html><head><meta charset='iso-8859-1'></head><body><img src='chien.jpg' alt='un chien, pas un chat: caf\xe9 dog'></body></html>".encode(
    "latin-1"
)


def write_warc(path) -> str:
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)

        def response(url: str, content_type: str, body: bytes) -> None:
            headers = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(url, "response", payload=BytesIO(body), http_headers=headers)
            )

        writer.write_record(
            writer.create_warc_record("https://e.org/zoo/index.html", "request", payload=BytesIO(b"GET /"))
        )
        response("https://e.org/zoo/index.html", "text/html; charset=utf-8", PAGE_A)
        response("http://f.org/fr/page", "text/html", PAGE_B)
        response("https://e.org/photo.jpg", "image/jpeg", b"\xff\xd8 <img src='x.jpg' alt='cat'>")
    return str(path)


def test_images_in_html_resolves_relative_urls():
    html = '<img src="a.jpg" alt="A"><img src="/b.jpg"><img src="HTTP://X.org/c.jpg" alt=" C ">'
    assert images_in_html(html, "https://e.org/dir/page.html") == [
        ("https://e.org/dir/a.jpg", "A"),
        ("https://e.org/b.jpg", ""),
        ("HTTP://X.org/c.jpg", " C "),
    ]


def test_warc_pool(ray_local, tmp_path):
    warc = write_warc(tmp_path / "crawl.warc.gz")
    assert list(read_warc(warc)) == [
        ("https://e.org/animals/cat.jpg", "A cat & her kitten", "https://e.org/zoo/index.html"),
        ("https://cdn.e.org/panda.png", "Red Panda", "https://e.org/zoo/index.html"),
        ("https://e.org/logo.gif", "", "https://e.org/zoo/index.html"),
        ("https://img.e.org/lh.jpg", "lighthouse", "https://e.org/zoo/index.html"),
        ("http://f.org/fr/chien.jpg", "un chien, pas un chat: caf\xe9 dog", "http://f.org/fr/page"),
    ]
    queries = write_queries(tmp_path / "queries.parquet", QUERIES)
    cfg = MatchConfig(pool=PoolConfig(keep_columns=("page_url",)))
    stats = match((warc,), queries, str(tmp_path / "m"), cfg)
    assert stats["input_rows"] == 5 and stats["dropped"]["empty_text"] == 1
    got = {r["url"]: (r["query_ids"], r["page_url"]) for r in read_matched(tmp_path / "m").to_pylist()}
    assert got == {
        "https://e.org/animals/cat.jpg": ([0], "https://e.org/zoo/index.html"),
        "https://cdn.e.org/panda.png": ([2], "https://e.org/zoo/index.html"),
        "https://img.e.org/lh.jpg": ([3], "https://e.org/zoo/index.html"),
        "http://f.org/fr/chien.jpg": ([1], "http://f.org/fr/page"),
    }
    (tmp_path / "bad.warc.gz").write_bytes(b"\x1f\x8b not a warc")
    with pytest.raises(WitError, match="bad.warc.gz"):
        match((str(tmp_path / "bad.warc.gz"),), queries, str(tmp_path / "x"))


def test_batches_grow_with_the_key_ranges():
    """Each batch stages a file per key range: batches grow so a staged file keeps about
    staged_rows_per_range rows (10M rows in 8 ranges made 19.5k tiny files before), within bounds."""
    cfg = MatchConfig()
    assert match_batch_rows(cfg, 1) == cfg.batch_size
    assert match_batch_rows(cfg, 8) == 8 * cfg.staged_rows_per_range
    assert match_batch_rows(cfg, 10_000) == cfg.max_batch_rows


def test_match_output_independent_of_actors_and_batches(ray_local, tmp_path):
    queries = write_queries(tmp_path / "queries.parquet", QUERIES)
    words = ["cat", "dog", "red panda", "lighthouse", "mouse"]
    texts = [f"{words[i % 5]} number {i} and {words[(i * 7) % 5]}" for i in range(300)]
    pool = write_pool(tmp_path / "pool.parquet", [f"http://e.org/{i % 250}.jpg" for i in range(300)], texts)
    outputs = []
    for concurrency, batch_size in ((1, 4096), (2, 7)):
        out = tmp_path / f"m{concurrency}"
        cfg = MatchConfig(concurrency=concurrency, batch_size=batch_size, range_target_bytes=2000,
                          staged_rows_per_range=1)             # batches of batch_size rows, not grown
        stats = match((pool,), queries, str(out), cfg)
        outputs.append(
            (read_matched(out), {k: v for k, v in stats.items() if k not in ("seconds", "rows_per_s")})
        )
    assert outputs[0][0].equals(outputs[1][0])
    assert [(f["file"], f["rows"]) for f in outputs[0][1]["files"]] == [
        (f["file"], f["rows"]) for f in outputs[1][1]["files"]
    ]
    assert outputs[0][1]["dropped"] == outputs[1][1]["dropped"]
    assert (
        outputs[0][1]["duplicate_url_rows"] == outputs[1][1]["duplicate_url_rows"] == 100
    )  # urls 0..49, two texts each


def test_key_ranges_follow_the_pool_size(ray_local, tmp_path):
    queries = write_queries(tmp_path / "queries.parquet", QUERIES)
    n = 400
    texts = [f"a {QUERIES[i % 4]} seen {i} times" for i in range(n)]
    urls = [f"http://e.org/{i % 300}.jpg" for i in range(n)]
    # A column the stage does not read counts for nothing, however large.
    pool = write_pool(tmp_path / "pool.parquet", urls, texts, blob=[b"x" * 10_000] * n)
    meta = pq.ParquetFile(pool).metadata
    read_bytes = sum(
        meta.row_group(g).column(c).total_uncompressed_size
        for g in range(meta.num_row_groups)
        for c in range(2)  # url, caption
    )
    assert pool_text_bytes([pool], PoolConfig()) == read_bytes
    tsv = tmp_path / "pool.tsv"
    tsv.write_text("".join(f"{u}\t{t}\n" for u, t in zip(urls, texts)))
    assert pool_text_bytes([str(tsv)], PoolConfig()) == tsv.stat().st_size

    whole = match((pool,), queries, str(tmp_path / "one"), MatchConfig(range_target_bytes=10 * read_bytes))
    assert whole["key_ranges"] == 1 and len(whole["files"]) == 1
    target = read_bytes // 5 + 1  # five ranges
    split = match((pool,), queries, str(tmp_path / "five"), MatchConfig(range_target_bytes=target))
    assert split["key_ranges"] == 5
    assert [f["file"] for f in split["files"]] == [f"part-{r:05d}.parquet" for r in range(5)]
    for r in range(5):  # each part holds exactly its range of keys, in key order
        keys = pq.read_table(tmp_path / "five" / f"part-{r:05d}.parquet")["key"].to_pylist()
        assert keys == sorted(keys) and {int(k[:4], 16) * 5 >> 16 for k in keys} == {r}
    assert read_matched(tmp_path / "five").equals(read_matched(tmp_path / "one"))
    assert split["duplicate_url_rows"] == whole["duplicate_url_rows"] == 200  # urls 0..99: two texts each
