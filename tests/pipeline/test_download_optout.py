"""Opt-outs (robots.txt, TDMRep header and tdmrep.json, X-Robots-Tag) and per-host manners
(connections per host, Retry-After), against a loopback web that counts what it is asked."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.config import DownloadConfig
from pipeline.fetch import Fetcher, Refused, retry_after_s
from pipeline.optout import TdmRule, header_reserves, parse_robots, parse_tdmrep, robots_allows, tdmrep_reserves
from tests.pipeline.helpers import JPEG
from tests.pipeline.test_download_guard import run_shard
from core.loopback import LoopbackServer, Response

LOOPBACK = ("127.0.0.0/8",)
ROBOTS = "User-agent: wit-clip\nDisallow: /private/\n\nUser-agent: *\nDisallow: /\n"
TDMREP = [
    {"location": "/reserved/*", "tdm-reservation": 1, "tdm-policy": "https://example.org/policy.json"},
    {"location": "/free/$", "tdm-reservation": 1},
    {"location": "/", "tdm-reservation": 0},
]
IMAGE = Response(200, JPEG, "image/jpeg")


def opted_web(path: str) -> Response:
    if path == "/robots.txt":
        return Response(200, ROBOTS.encode(), "text/plain")
    if path == "/.well-known/tdmrep.json":
        return Response(200, json.dumps(TDMREP).encode(), "application/json")
    if path == "/tdm-header.jpg":
        return Response(200, JPEG, "image/jpeg", {"TDM-Reservation": "1"})
    if path == "/tdm-header-0.jpg":
        return Response(200, JPEG, "image/jpeg", {"tdm-reservation": "0"})
    if path == "/noai.jpg":
        return Response(200, JPEG, "image/jpeg", {"X-Robots-Tag": "noai"})
    return IMAGE


EXPECTED = {
    "/public/a.jpg": "ok",  # `*` disallows everything, but our token has its own group
    "/private/b.jpg": "robots_txt",
    "/reserved/c.jpg": "tdmrep_json",
    "/free/d.jpg": "ok",  # "/free/$" matches /free/ only
    "/tdm-header.jpg": "tdmrep_header",
    "/tdm-header-0.jpg": "ok",
    "/noai.jpg": "robots_disallowed",
}


def test_robots_groups_and_tdmrep_rules_as_pure_functions():
    robots = parse_robots(ROBOTS)
    assert robots_allows(robots, "wit-clip", "http://h/public/x.jpg")
    assert not robots_allows(robots, "wit-clip", "http://h/private/x.jpg")
    assert not robots_allows(robots, "otherbot", "http://h/public/x.jpg")
    assert robots_allows(None, "wit-clip", "http://h/private/x.jpg")  # no robots.txt: allowed
    rules = parse_tdmrep(json.dumps(TDMREP))
    assert rules[0] == TdmRule("/reserved/*", True)
    assert tdmrep_reserves(rules, "/reserved/a/b.jpg") and tdmrep_reserves(rules, "/free/")
    assert not tdmrep_reserves(rules, "/free/x.jpg") and not tdmrep_reserves(rules, "/x.jpg")
    first_wins = parse_tdmrep('[{"location": "/", "tdm-reservation": 0}, {"location": "/a", "tdm-reservation": 1}]')
    assert not tdmrep_reserves(first_wins, "/a.jpg")
    assert parse_tdmrep("not json") == () and parse_tdmrep('{"location": "/"}') == ()
    assert header_reserves({"tdm-reservation": " 1 "}) and not header_reserves({"tdm-reservation": "0"})
    assert retry_after_s("7") == 7.0 and retry_after_s("soon") is None
    assert 50 < retry_after_s(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))) <= 61


def test_each_opt_out_refuses_its_rows_with_its_reason(tmp_path):
    cfg = DownloadConfig(image_size=32, timeout_s=3, thread_count=4, allow_networks=LOOPBACK)
    with LoopbackServer(opted_web) as server:
        reasons = run_shard(tmp_path, [f"{server.url}{p}" for p in EXPECTED], cfg, "optouts")
        hits = dict(server.hits)
    assert {u.removeprefix(server.url): r for u, r in reasons.items()} == EXPECTED
    # robots.txt and tdmrep.json once for the shard; refused paths never requested
    assert hits["/robots.txt"] == hits["/.well-known/tdmrep.json"] == 1
    assert "/private/b.jpg" not in hits and "/reserved/c.jpg" not in hits


def test_ignore_robots_txt_fetches_no_robots_txt(tmp_path):
    cfg = DownloadConfig(image_size=32, timeout_s=3, thread_count=4, allow_networks=LOOPBACK,
                         respect_robots_txt=False)
    with LoopbackServer(opted_web) as server:
        reasons = run_shard(tmp_path, [f"{server.url}{p}" for p in EXPECTED], cfg, "ignored")
        assert "/robots.txt" not in server.hits
    assert {u.removeprefix(server.url): r for u, r in reasons.items()} == {**EXPECTED, "/private/b.jpg": "ok"}


@pytest.mark.parametrize("robots", [Response(500, b"oops"), Response(200, ROBOTS.encode(), delay_s=3.0)])
def test_an_unreachable_robots_txt_allows_everything(robots):
    def web(path: str) -> Response:
        return robots if path == "/robots.txt" else IMAGE

    cfg = DownloadConfig(timeout_s=5, optout_timeout_s=1.0, allow_networks=LOOPBACK)
    with LoopbackServer(web) as server:
        assert Fetcher(cfg).image(f"{server.url}/private/x.jpg") == JPEG


def test_at_most_n_connections_per_host():
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def slow(path: str) -> Response:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return IMAGE

    def peak(per_host: int) -> int:
        state["peak"] = 0
        cfg = DownloadConfig(timeout_s=5, allow_networks=LOOPBACK, max_connections_per_host=per_host,
                             respect_robots_txt=False, respect_tdmrep=False)
        fetcher = Fetcher(cfg)
        with LoopbackServer(slow) as server, ThreadPoolExecutor(8) as pool:
            list(pool.map(fetcher.image, [f"{server.url}/{i}.jpg" for i in range(16)]))
        return state["peak"]

    assert peak(2) == 2
    assert peak(8) > 2  # the measure can see more: the limit, not the client, held it at 2


def test_retry_after_is_waited_out_and_holds_the_host():
    arrivals: dict[str, list[float]] = {}

    def busy_once(path: str) -> Response:
        arrivals.setdefault(path, []).append(time.monotonic())
        if path == "/busy.jpg" and len(arrivals[path]) == 1:
            return Response(503, b"busy", "text/plain", {"Retry-After": "1"})
        return IMAGE

    cfg = DownloadConfig(timeout_s=5, allow_networks=LOOPBACK, respect_robots_txt=False, respect_tdmrep=False)
    fetcher = Fetcher(cfg)
    with LoopbackServer(busy_once) as server:
        assert fetcher.image(f"{server.url}/busy.jpg") == JPEG  # one more try after the pause
        first, second = arrivals["/busy.jpg"]
        assert second - first >= 0.95
        short = Fetcher(DownloadConfig(timeout_s=5, allow_networks=LOOPBACK, max_retry_after_s=0.5,
                                       respect_robots_txt=False, respect_tdmrep=False))
        arrivals.clear()
        start = time.monotonic()
        with pytest.raises(Refused) as err:  # asked for more than the cap: fail now, retry later
            short.image(f"{server.url}/busy.jpg")
        assert err.value.reason == "http_5xx" and len(arrivals["/busy.jpg"]) == 1
        short.image(f"{server.url}/other.jpg")  # the host stays paused for the capped time
        assert arrivals["/other.jpg"][0] - start >= 0.45
