"""The demo's web: deterministic scenes, a pool with the promised share of bad rows, real HTTP."""

import io
import urllib.error
import urllib.request
from collections import Counter

import pytest
from PIL import Image

from queries.normalize import normalize
from wit.demo import evalset, scenes, web
from core.loopback import LoopbackServer


def test_scenes_are_pure_functions_of_seed_and_id():
    assert scenes.scene(0, 5) == scenes.scene(0, 5)
    assert scenes.encode(scenes.render(0, 5), "png") == scenes.encode(scenes.render(0, 5), "png")
    assert scenes.scene(0, 5) != scenes.scene(1, 5) or scenes.scene(0, 6) != scenes.scene(1, 6)


def test_captions_name_the_colour_drawn():
    for scene_id in range(50):
        s = scenes.scene(0, scene_id)
        assert s.colour in normalize(s.caption).split()
        image = scenes.render(0, scene_id).convert("RGB")
        assert image.size == (s.width, s.height)
        # the most common non-background colour is near the named one
        counts = Counter(image.getdata())
        target = scenes.COLOURS[s.colour]
        assert any(sum(abs(a - b) for a, b in zip(px, target)) < 90 for px, _ in counts.most_common(2000))


def test_pool_has_every_kind_of_bad_row_and_is_deterministic():
    table = web.pool("http://127.0.0.1:9", 2_000, seed=0)
    assert table.equals(web.pool("http://127.0.0.1:9", 2_000, seed=0))
    kinds = Counter(web.row_kind(0, r) for r in range(2_000))
    assert set(kinds) == {"good", *web.BAD_ROW_SHARES}
    assert 0.70 < kinds["good"] / 2_000 < 0.85
    urls = table.column("url").to_pylist()
    originals = [u for r, u in enumerate(urls) if web.row_kind(0, r) != "duplicate"]
    assert sum(not u.startswith("http") for u in originals) == kinds["bad_url"]
    assert len(set(zip(urls, table.column("caption").to_pylist()))) == 2_000 - kinds["duplicate"]


def test_another_bad_row_mix_changes_the_pool_as_asked():
    mix = {"missing": 0.30, "bad_url": 0.10}
    table = web.pool("http://127.0.0.1:9", 2_000, seed=1, shares=mix)
    urls = table.column("url").to_pylist()
    assert 0.25 < sum("/missing/" in u for u in urls) / 2_000 < 0.35
    assert 0.07 < sum(not u.startswith("http") for u in urls) / 2_000 < 0.13
    assert not any("/broken/" in u or "/noai/" in u for u in urls)
    with pytest.raises(ValueError):
        web.pool("http://127.0.0.1:9", 10, seed=1, shares={"lost": 0.1})


def test_server_answers_each_kind_of_url():
    with LoopbackServer(web.app(seed=0)) as server:
        def get(path):
            return urllib.request.urlopen(server.url + path, timeout=5)

        with get("/img/3.jpg") as resp:
            image = Image.open(io.BytesIO(resp.read()))
            assert image.format == "JPEG" and image.size == (scenes.scene(0, 3).width, scenes.scene(0, 3).height)
        with get("/img/3.webp") as resp:
            assert Image.open(io.BytesIO(resp.read())).format == "WEBP"
        with get("/noai/3.jpg") as resp:
            assert resp.headers["X-Robots-Tag"] == "noai"
        with get("/page/3.html") as resp:
            assert resp.headers["Content-Type"] == "text/html"
        with get("/broken/3.jpg") as resp, pytest.raises(OSError):
            Image.open(io.BytesIO(resp.read())).load()
        for path, code in (("/missing/3.jpg", 404), ("/error/3.jpg", 500), ("/../etc/passwd", 404)):
            with pytest.raises(urllib.error.HTTPError) as err:
                get(path)
            assert err.value.code == code


def test_a_large_pool_repeats_its_rows_on_mirror_urls_that_serve_the_same_resource():
    from bench.probe import ProbeWeb, pool_table

    with LoopbackServer(web.app(seed=0)) as server:
        table = pool_table(server.url, 25)
        assert table.equals(web.pool(server.url, 25, seed=0))             # small pools are the web's own
        mirrored = pool_table(server.url, 25, ProbeWeb(distinct_rows=10))
        urls, captions = mirrored["url"].to_pylist(), mirrored["caption"].to_pylist()
        assert len(set(urls)) == 25 and captions[12] == captions[2] and urls[12] == urls[2] + "?mirror=1"
        with urllib.request.urlopen(server.url + "/img/3.jpg", timeout=5) as a, \
                urllib.request.urlopen(server.url + "/img/3.jpg?mirror=7", timeout=5) as b:
            assert a.read() == b.read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.url + "/img/3.jpg?mirror=x", timeout=5)


def test_eval_set_is_balanced_and_held_out(tmp_path):
    images, classes_json = evalset.write(tmp_path, seed=0, per_class=3)
    per_class = {d.name: len(list(d.glob("*.png"))) for d in images.iterdir()}
    assert per_class == dict.fromkeys(scenes.COLOURS, 3)
    web_images = {scenes.encode(scenes.render(0, i), "png") for i in range(200)}
    held_out = {p.read_bytes() for p in images.rglob("*.png")}
    assert not (held_out & web_images)


def test_a_new_pool_is_served_on_the_demo_port_unless_it_is_taken(tmp_path):
    """The port is in every pool URL and the keys hash the URLs: the same port, the same corpus."""
    import socket

    from wit.demo.run import DEMO_PORT, _reuse_or_reset_pool

    pool = tmp_path / "web" / "pool.parquet"
    with socket.socket() as probe:                       # the test's own seed: a port no demo run uses
        seed = 977
        try:
            probe.bind(("127.0.0.1", DEMO_PORT + seed))
        except OSError:
            pytest.skip(f"port {DEMO_PORT + seed} is in use on this machine")
        assert _reuse_or_reset_pool(pool, tmp_path, seed) == 0          # taken: any free port
    assert _reuse_or_reset_pool(pool, tmp_path, seed) == DEMO_PORT + seed
