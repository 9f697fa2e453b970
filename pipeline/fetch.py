"""Our fetch for img2dataset's Downloader: guarded connections, opt-outs, per-host manners, retries.

img2dataset fetches with urllib, which resolves a name and connects wherever the answer points,
follows redirects on its own, and knows only X-Robots-Tag. `Fetcher` replaces that one function
(`download_image_with_retry`) for the duration of a shard; decode, resize and the Parquet writer
stay img2dataset's. Per hop (the first request and each redirect): parse (http/https only, no
credentials) -> resolve once and check the address (pipeline.netguard) -> robots.txt and
tdmrep.json of the hop's origin (fetched once per origin per shard task, cached) -> a connection
slot of the host (at most `max_connections_per_host`, Retry-After honoured) -> GET on the checked
address. The reply's `tdm-reservation` and X-Robots-Tag headers are checked before the body is kept.

A refusal or failure is reported as "[reason] message": pipeline.download_shard.failure_reason
reads the reason back, so each refusal has its own class in the failure rows.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import re
import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import pipeline.optout as optout
from pipeline.config import DownloadConfig
from pipeline.netguard import BlockedAddress, checked_address, connection, load_resolver, parse_networks
from core.errors import WitError

# Failures worth fetching again later (`--retry-failures`); every other reason is permanent.
TRANSIENT_REASONS = frozenset({"timeout", "connection_error", "http_5xx", "http_429"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REPEATS, MAX_REDIRECTS = 4, 10  # urllib's bounds: a URL visited 4 times, or 10 hops, is a loop
_NON_ASCII = re.compile(r"[^\x21-\x7e]")


class Refused(Exception):
    """A URL that yields no image, with its reason class; `retry_after` when the host asked for a pause."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None):
        super().__init__(f"[{reason}] {message}")
        self.reason, self.retry_after = reason, retry_after


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def parse_target(url: str) -> Target:
    """An http(s) URL without credentials -> where to connect; Refused("bad_url") otherwise."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:
        raise Refused("bad_url", f"unparsable URL: {err}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("bad_url", f"scheme {parts.scheme!r} is not http(s)")
    if parts.username is not None or parts.password is not None:
        raise Refused("bad_url", "URL carries credentials (user:pass@)")
    if not parts.hostname:
        raise Refused("bad_url", "URL has no host")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise Refused("bad_url", f"host {parts.hostname!r} is not a valid name") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # Percent-encode what a request line cannot carry (spaces, non-ASCII), as browsers do.
    path = _NON_ASCII.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), path)
    return Target(url, parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) -> seconds from now; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class HostGate:
    """At most `per_host` connections per host at once, and none before a host's Retry-After time."""

    def __init__(self, per_host: int):
        self.per_host = per_host
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
        self._not_before: dict[tuple[str, int], float] = {}

    @contextmanager
    def slot(self, host: tuple[str, int]) -> Iterator[None]:
        with self._lock:
            slots = self._slots.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with slots:
            wait = self._not_before.get(host, 0.0) - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            yield

    def pause(self, host: tuple[str, int], seconds: float) -> None:
        with self._lock:
            self._not_before[host] = max(self._not_before.get(host, 0.0), time.monotonic() + seconds)


@dataclass
class Reply:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes


@dataclass
class _Policy:
    """An origin's opt-out files, fetched by the first thread that needs them."""

    lock: threading.Lock
    robots: object = None  # urllib.robotparser.RobotFileParser | None
    tdm_rules: tuple = ()
    done: bool = False


class Fetcher:
    """One shard task's fetcher: img2dataset calls it in its download threads."""

    def __init__(self, cfg: DownloadConfig):
        self.cfg = cfg
        self.allowed = parse_networks(cfg.allow_networks)
        self.resolver = load_resolver(cfg.resolver)
        self.token = cfg.user_agent_token.strip().lower()
        # img2dataset's User-Agent: a browser prefix (some hosts refuse bare bots) naming our token.
        self.user_agent = (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"
            f" (compatible; {self.token}; +https://github.com/rom1504/img2dataset)"
        )
        self.directives = {d.strip().lower() for d in cfg.disallowed_header_directives}
        self.gate = HostGate(cfg.max_connections_per_host)
        self.requests: Counter[str] = Counter()  # requests sent, per kind (image, robots, tdmrep)
        self._lock = threading.Lock()
        self._policies: dict[tuple[str, str, int], _Policy] = {}

    # -- img2dataset's interface ------------------------------------------------------------------
    def __call__(
        self, row, timeout=None, retries=None, user_agent_token=None, disallowed_header_directives=None
    ):
        """img2dataset's download_image_with_retry: (key, url) -> (key, BytesIO | None, error | None)."""
        key, url = row
        try:
            return key, io.BytesIO(self.image(url)), None
        except Refused as err:
            return key, None, str(err)
        except Exception as err:  # noqa: BLE001 - one odd URL must not end the shard's thread pool
            return key, None, f"[other] {type(err).__name__}: {err}"

    # -- one image ----------------------------------------------------------------------------------
    def image(self, url: str) -> bytes:
        """The image bytes at `url`, retried on transient failures; Refused with a reason otherwise."""
        attempts, waited = self.cfg.retries + 1, False
        while True:
            try:
                return self._image_once(url)
            except Refused as err:
                attempts -= 1
                if (
                    err.retry_after is not None
                    and not waited
                    and err.retry_after <= self.cfg.max_retry_after_s
                ):
                    waited = True  # the host asked for a pause: one more try once it is over
                    continue
                if err.reason not in TRANSIENT_REASONS or attempts <= 0:
                    raise

    def _image_once(self, url: str) -> bytes:
        reply = self.get(url, "image", self.cfg.timeout_s, optouts=True)
        if not 200 <= reply.status < 300:
            raise _status_refusal(reply)
        if self.cfg.respect_tdmrep and optout.header_reserves(reply.headers):
            raise Refused("tdmrep_header", "tdm-reservation: 1 (TDM rights reserved by the response header)")
        if self.directives and _x_robots_disallows(reply.headers, self.token, self.directives):
            raise Refused("robots_disallowed", "Use of image disallowed by X-Robots-Tag directive")
        return reply.body

    # -- requests -----------------------------------------------------------------------------------
    def get(self, url: str, kind: str, timeout: float, optouts: bool) -> Reply:
        """GET with redirects followed by hand, each hop guarded (and checked for opt-outs if asked)."""
        visits: Counter[str] = Counter()
        target = parse_target(url)
        while True:
            address = self._address(target)  # before anything is sent to the hop's host, robots.txt included
            if optouts:
                self._check_optouts(target)
            reply = self._request(target, address, kind, timeout)
            location = reply.headers.get("Location")
            if reply.status not in REDIRECTS or not location:
                return reply
            next_url = urljoin(target.url, location)
            if visits[next_url] >= MAX_REPEATS or sum(visits.values()) >= MAX_REDIRECTS:
                raise Refused("redirect_loop", f"HTTP Error {reply.status}: redirect loop at {next_url}")
            visits[next_url] += 1
            target = parse_target(next_url)

    def _address(self, target: Target) -> str:
        try:
            return checked_address(target.host, target.port, self.resolver, self.allowed)
        except BlockedAddress as err:
            raise Refused("blocked_address", str(err)) from None
        except (OSError, UnicodeError) as err:  # socket.gaierror: the name does not resolve
            raise Refused("connection_error", f"cannot resolve {target.host}: {err}") from None

    def _request(self, target: Target, address: str, kind: str, timeout: float) -> Reply:
        with self.gate.slot((target.host, target.port)):
            with self._lock:
                self.requests[kind] += 1
            conn = connection(target.scheme, target.host, target.port, address, timeout)
            try:
                conn.request("GET", target.path, headers={"User-Agent": self.user_agent, "Accept": "*/*"})
                resp = conn.getresponse()
                body = resp.read() if 200 <= resp.status < 300 else b""
                reply = Reply(resp.status, resp.reason, resp.headers, body)
            except (TimeoutError, socket.timeout) as err:
                raise Refused("timeout", f"{kind} {target.url}: timed out ({err})") from None
            except (OSError, http.client.HTTPException, ValueError) as err:
                raise Refused(
                    "connection_error", f"{kind} {target.url}: {type(err).__name__}: {err}"
                ) from None
            finally:
                conn.close()
        pause = retry_after_s(reply.headers.get("Retry-After")) if reply.status in (429, 503) else None
        if pause is not None:
            self.gate.pause((target.host, target.port), min(pause, self.cfg.max_retry_after_s))
        return reply

    # -- opt-outs -------------------------------------------------------------------------------------
    def _check_optouts(self, target: Target) -> None:
        if not (self.cfg.respect_robots_txt or self.cfg.respect_tdmrep):
            return
        policy = self._policy(target)
        if self.cfg.respect_robots_txt and not optout.robots_allows(policy.robots, self.token, target.url):
            raise Refused(
                "robots_txt", f"robots.txt of {target.host} disallows {target.path} for {self.token}"
            )
        if self.cfg.respect_tdmrep and optout.tdmrep_reserves(policy.tdm_rules, target.path.split("?")[0]):
            raise Refused(
                "tdmrep_json", f"{optout.TDMREP_PATH} of {target.host} reserves TDM rights on {target.path}"
            )

    def _policy(self, target: Target) -> _Policy:
        with self._lock:
            policy = self._policies.setdefault(target.origin, _Policy(threading.Lock()))
        with policy.lock:  # one fetch per origin; the other threads of that origin wait for it
            if not policy.done:
                if self.cfg.respect_robots_txt:
                    text = self._policy_text(target, optout.ROBOTS_PATH, "robots")
                    policy.robots = None if text is None else optout.parse_robots(text)
                if self.cfg.respect_tdmrep:
                    text = self._policy_text(target, optout.TDMREP_PATH, "tdmrep")
                    policy.tdm_rules = () if text is None else optout.parse_tdmrep(text)
                policy.done = True
        return policy

    def _policy_text(self, target: Target, path: str, kind: str) -> str | None:
        """An opt-out file's text; None when it cannot be had (then nothing is opted out)."""
        url = f"{target.scheme}://{_netloc(target)}{path}"
        try:
            reply = self.get(url, kind, self.cfg.optout_timeout_s, optouts=False)
        except Refused:
            return None
        if reply.status != 200:
            return None
        return reply.body[: optout.MAX_POLICY_BYTES].decode("utf-8", "replace")


def _netloc(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}"


def _status_refusal(reply: Reply) -> Refused:
    message = f"HTTP Error {reply.status}: {reply.reason}"
    after = retry_after_s(reply.headers.get("Retry-After")) if reply.status in (429, 503) else None
    if reply.status == 404:
        return Refused("http_404", message)
    if reply.status == 429:
        return Refused("http_429", message, after)
    if reply.status >= 500:
        return Refused("http_5xx", message, after)
    return Refused("http_4xx", message)


def _x_robots_disallows(headers: http.client.HTTPMessage, token: str, directives: set[str]) -> bool:
    # img2dataset's own parser of X-Robots-Tag (the `token: directive, ...` form and the bare form).
    from img2dataset.downloader import is_disallowed

    return is_disallowed(headers, token, directives)


_INSTALL = threading.Lock()


@contextmanager
def installed(fetcher: Fetcher) -> Iterator[None]:
    """img2dataset's Downloader calls `download_image_with_retry` from its module at each use: point it
    at `fetcher` while a shard runs. One shard per process at a time (Ray runs one task per worker
    process; the lock keeps two in-process shards from swapping each other's fetcher)."""
    import img2dataset.downloader as i2d

    with _INSTALL:
        original = i2d.download_image_with_retry
        i2d.download_image_with_retry = fetcher
        try:
            yield
        finally:
            i2d.download_image_with_retry = original


def validate_fetch(cfg: DownloadConfig) -> None:
    """Bad fetch settings -> WitError before any task starts."""
    try:
        parse_networks(cfg.allow_networks)
    except ValueError as err:
        raise WitError(
            f"--allow-network: {err}", hint="give a CIDR such as 127.0.0.0/8 or fd00::/8"
        ) from None
    if cfg.max_connections_per_host < 1:
        raise WitError("max_connections_per_host must be >= 1")
    try:
        load_resolver(cfg.resolver)
    except (ImportError, AttributeError, ValueError) as err:
        raise WitError(
            f"resolver {cfg.resolver!r} cannot be loaded: {err}", hint="name it module:function"
        ) from None
