"""The private-address guard: the loopback web in disguise is refused and never reached; every other
range is tested on the address check itself (a pure function), never by connecting to it."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pyarrow.parquet as pq
import pytest

from pipeline.config import DownloadConfig
from pipeline.download_shard import download_shard
from pipeline.fetch import Fetcher, Refused, parse_target
from pipeline.netguard import parse_networks, refusal
from tests.pipeline.helpers import JPEG, cat_web
from tests.pipeline.test_download import make_selected
from tests.pipeline.test_download_resume import run_env
from core.config import to_dict
from core.loopback import LoopbackServer, Response

LOOPBACK = ("127.0.0.0/8",)
TEST_NAMES = {"images.test": "127.0.0.1"}  # a public-looking name whose DNS answer is loopback
_rebind_calls: Counter[str] = Counter()


def resolve(host: str, port: int) -> list[str]:
    """The tests' resolver (DownloadConfig.resolver): our names, else the OS resolver; a rebinding
    name answers loopback the first time and the metadata service after that."""
    from pipeline.netguard import system_resolver

    if host == "rebind.test":
        _rebind_calls[host] += 1
        return ["127.0.0.1"] if _rebind_calls[host] == 1 else ["169.254.169.254"]
    return [TEST_NAMES[host]] if host in TEST_NAMES else system_resolver(host, port)


RESOLVER = f"{__name__}:resolve"


@pytest.mark.parametrize(
    "address, kind",
    [
        ("169.254.169.254", "link_local"),  # AWS/GCP/Azure metadata service
        ("fe80::1", "link_local"),
        ("fe80::1%eth0", "link_local"),
        ("10.0.0.5", "private"),  # e.g. the user's own Ray head node
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non_global"),  # carrier-grade NAT
        ("::ffff:10.0.0.5", "private"),  # IPv4-mapped
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link_local"),  # NAT64 of 169.254.169.254
        ("2002:a9fe:a9fe::1", "link_local"),  # 6to4 of 169.254.169.254
        ("8.8.8.8", None),
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_check_by_range(address, kind):
    assert refusal(address) == kind


def test_allow_network_opens_exactly_its_range():
    opened = parse_networks(["10.1.0.0/16", "127.0.0.0/8"])
    assert refusal("10.1.2.3", opened) is None
    assert refusal("10.2.0.1", opened) == "private"
    assert refusal("127.9.9.9", opened) is None and refusal("::ffff:127.0.0.1", opened) is None
    assert refusal("::1", opened) == "loopback"  # an IPv4 range does not open IPv6 loopback
    assert refusal("169.254.169.254", opened) == "link_local"
    assert refusal("169.254.169.254", parse_networks(["0.0.0.0/0"])) is None
    for bad in ("10.0.0.0/33", "not-a-network"):
        with pytest.raises(ValueError):
            parse_networks([bad])


def test_urls_with_credentials_or_other_schemes_are_refused_before_any_lookup():
    for url in ("http://user:pass@127.0.0.1/x.jpg", "http://user@example.org/x.jpg", "ftp://example.org/x.jpg",
                "file:///etc/passwd", "javascript:alert(1)", "http:///x.jpg"):
        with pytest.raises(Refused) as err:
            parse_target(url)
        assert err.value.reason == "bad_url", url
    assert parse_target("http://[::1]:8080/a b.jpg?x=1").path == "/a%20b.jpg?x=1"


def port_of(server: LoopbackServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def disguises(port: int) -> list[str]:
    return [
        f"http://localhost:{port}/a.jpg",
        f"http://127.0.0.1:{port}/b.jpg",
        f"http://127.1.2.3:{port}/c.jpg",
        f"http://0.0.0.0:{port}/d.jpg",
        f"http://[::1]:{port}/e.jpg",
        f"http://2130706433:{port}/f.jpg",  # 127.0.0.1 as one decimal number
        f"http://0x7f000001:{port}/g.jpg",  # ... and in hex
        f"http://127.1:{port}/h.jpg",
        f"http://images.test:{port}/i.jpg",  # a name resolving to 127.0.0.1
        f"http://[::ffff:127.0.0.1]:{port}/j.jpg",
    ]


def run_shard(tmp_path, urls: list[str], cfg: DownloadConfig, name: str) -> dict[str, str]:
    """One shard in this process (no Ray): url -> failure reason, or "ok"."""
    selected = tmp_path / f"selected-{name}"
    make_selected(selected, "", urls)
    part = str(selected / "part-00000.parquet")
    corpus = tmp_path / f"corpus-{name}"
    marker = download_shard(0, [(part, 0, len(urls))], name, str(corpus), to_dict(cfg))
    assert marker["rows"] == len(urls) == marker["corpus_rows"] + marker["failure_rows"]
    failures = pq.read_table(corpus / "_shards" / "00000.failures.parquet").to_pylist()
    images = pq.read_table(corpus / "_shards" / "00000.images.parquet")["url"].to_pylist()
    return {**{r["url"]: r["reason"] for r in failures}, **dict.fromkeys(images, "ok")}


def test_loopback_in_disguise_is_refused_by_default_and_never_reached(tmp_path):
    cfg = DownloadConfig(image_size=32, timeout_s=3, thread_count=4, resolver=RESOLVER)
    with LoopbackServer(cat_web) as server:
        urls = disguises(port_of(server))
        urls += [f"http://user:pass@127.0.0.1:{port_of(server)}/k.jpg", "ftp://127.0.0.1/l.jpg"]
        reasons = run_shard(tmp_path, urls, cfg, "default")
        assert server.requests == 0  # not an image, not a robots.txt: nothing reached the server
    assert reasons == {**dict.fromkeys(urls[:-2], "blocked_address"), urls[-2]: "bad_url", urls[-1]: "bad_url"}


def test_allow_network_opens_the_loopback_web(tmp_path):
    cfg = DownloadConfig(image_size=32, timeout_s=3, thread_count=4, resolver=RESOLVER, allow_networks=LOOPBACK)
    with LoopbackServer(cat_web) as server:
        urls = disguises(port_of(server))
        reasons = run_shard(tmp_path, urls, cfg, "allowed")
        fetched = {p for p in server.hits if p.endswith(".jpg")}
    assert reasons[urls[3]] == "blocked_address"  # 0.0.0.0 is not in 127.0.0.0/8
    assert reasons[urls[4]] == "blocked_address"  # ::1 neither (an IPv4 range opens no IPv6)
    ok = [u for i, u in enumerate(urls) if i not in (2, 3, 4)]  # 127.1.2.3: nobody listens there
    assert all(reasons[u] == "ok" for u in ok), reasons
    assert reasons[urls[2]] == "connection_error"
    assert fetched == {"/" + u.rsplit("/", 1)[1] for u in ok}


def test_a_redirect_into_a_closed_range_is_refused_at_the_hop(tmp_path):
    """127.0.0.1 opened, 127.0.0.2 not: a redirect from the first to the second is never followed."""
    with LoopbackServer(cat_web, host="127.0.0.2") as inner:
        hop = Response(302, b"", "text/plain", {"Location": f"{inner.url}/inside.jpg"})

        def outer_web(path: str) -> Response:
            return hop if path == "/hop.jpg" else Response(200, JPEG, "image/jpeg")

        with LoopbackServer(outer_web) as outer:
            urls = [f"{outer.url}/hop.jpg", f"{outer.url}/direct.jpg"]
            closed = DownloadConfig(image_size=32, timeout_s=3, thread_count=2, allow_networks=("127.0.0.1/32",))
            assert run_shard(tmp_path, urls, closed, "closed") == {urls[0]: "blocked_address", urls[1]: "ok"}
            assert inner.requests == 0 and outer.hits["/hop.jpg"] == 1
            opened = DownloadConfig(image_size=32, timeout_s=3, thread_count=2, allow_networks=LOOPBACK)
            assert run_shard(tmp_path, urls, opened, "opened") == dict.fromkeys(urls, "ok")
            assert inner.hits["/inside.jpg"] == 1  # the same hop, opened: reached


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup():
    """A rebinding name answers loopback (opened) once, then the metadata service: one lookup per
    connection, so the image comes from the checked address and nothing asks the resolver again."""
    _rebind_calls.clear()
    cfg = DownloadConfig(timeout_s=3, resolver=RESOLVER, allow_networks=LOOPBACK,
                         respect_robots_txt=False, respect_tdmrep=False)
    with LoopbackServer(cat_web) as server:
        port = port_of(server)
        assert Fetcher(cfg).image(f"http://rebind.test:{port}/x.jpg") == JPEG
        assert _rebind_calls["rebind.test"] == 1 and server.hits["/x.jpg"] == 1
        with pytest.raises(Refused) as err:  # the next connection looks up again, and is refused
            Fetcher(cfg).image(f"http://rebind.test:{port}/x.jpg")
        assert err.value.reason == "blocked_address" and "169.254.169.254 (link_local)" in str(err.value)
        assert server.hits["/x.jpg"] == 1


def test_cli_refuses_loopback_without_allow_network_and_explains(tmp_path):
    with LoopbackServer(cat_web) as server:
        make_selected(tmp_path / "selected", server.url, ["/a.jpg", "/b.jpg"])
        cmd = [sys.executable, "-m", "wit.cli", "pipeline", "download", "--selected", str(tmp_path / "selected"),
               "--image-size", "32", "--timeout", "2", "--threads", "2"]
        blocked = subprocess.run([*cmd, "--out", str(tmp_path / "c1")], env=run_env(), capture_output=True, text=True)
        assert blocked.returncode == 0, blocked.stderr[-2000:]
        assert server.requests == 0
        failures = pq.read_table(next((tmp_path / "c1" / "failures").glob("part-*.parquet")))
        assert set(failures["reason"].to_pylist()) == {"blocked_address"}
        assert all("--allow-network" in m for m in failures["error_message"].to_pylist())
        bad = subprocess.run([*cmd, "--out", str(tmp_path / "c2"), "--allow-network", "127.0.0.0/99"],
                             env=run_env(), capture_output=True, text=True)
        assert bad.returncode == 2 and "--allow-network" in bad.stderr and server.requests == 0
    help_text = subprocess.run([*cmd[:5], "--help"], env=run_env(), capture_output=True, text=True).stdout
    assert "--allow-network" in help_text and "169.254" in help_text and "robots.txt" in help_text


def test_https_checks_the_name_while_connecting_to_the_checked_address(tmp_path, monkeypatch):
    """TLS to a name mapped to 127.0.0.1: SNI and the certificate check use the name, the socket the
    checked address; the same server by its bare address fails verification (the check is on)."""
    import http.server
    import ssl
    import threading

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=images.test", "-addext", "subjectAltName=DNS:images.test"],
                   check=True, capture_output=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(JPEG)))
            self.end_headers()
            self.wfile.write(JPEG)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test's own certificate
        port = httpd.server_address[1]
        cfg = DownloadConfig(timeout_s=5, resolver=RESOLVER, allow_networks=LOOPBACK,
                             respect_robots_txt=False, respect_tdmrep=False)
        assert Fetcher(cfg).image(f"https://images.test:{port}/x.jpg") == JPEG
        with pytest.raises(Refused) as err:
            Fetcher(cfg).image(f"https://127.0.0.1:{port}/x.jpg")
        assert err.value.reason == "connection_error" and "certificate" in str(err.value).lower()
    finally:
        httpd.shutdown()
        httpd.server_close()
