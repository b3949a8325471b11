"""traffic-tuner's pure logic: annotation validation, rates with counter resets, hysteresis."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from examples.traffic_tuner import config as c
from examples.traffic_tuner.config import ConfigError, next_state, parse_config, rate
from examples.traffic_tuner.controller import ScrapeError, safe_url, scrape

GOOD = {c.METRICS_URL: "http://web.shop.svc:9090/metrics", c.COUNTER: "http_requests_total",
        c.THRESHOLD: "10", c.CONFIGMAP: "web-tuning", c.KEY: "mode", c.HIGH: "busy",
        c.NORMAL: "quiet"}


def test_unmanaged_and_defaults() -> None:
    assert parse_config({}) is None
    cfg = parse_config(GOOD)
    assert cfg is not None
    assert (cfg.threshold, cfg.band, cfg.min_seconds, cfg.interval) == (10, 0.2, 60, 15)


@pytest.mark.parametrize("change, fragment", [
    ({c.METRICS_URL: "file:///etc/passwd"}, "http"),
    ({c.METRICS_URL: "ftp://host/x"}, "http"),
    ({c.METRICS_URL: "gopher://host/x"}, "http"),
    ({c.METRICS_URL: "http://user:secret@host/metrics"}, "user:password"),
    ({c.METRICS_URL: "http:///metrics"}, "host"),
    ({c.METRICS_URL: "http://host:99999/metrics"}, "valid URL"),
    ({c.METRICS_URL: "http://host/me trics"}, "spaces"),
    ({c.METRICS_URL: "http://169.254.169.254/latest/meta-data"}, "link-local"),
    ({c.METRICS_URL: "http://[fe80::1]/metrics"}, "link-local"),
    ({c.METRICS_URL: "http://0.0.0.0/metrics"}, "unspecified"),
    # Every form the resolver (inet_aton) reads as 169.254.169.254 or 0.0.0.0, and the
    # IPv4-mapped IPv6 form, which a dual-stack socket connects to over IPv4.
    ({c.METRICS_URL: "http://2852039166/latest/meta-data"}, "link-local"),
    ({c.METRICS_URL: "http://0xa9fea9fe/latest/meta-data"}, "link-local"),
    ({c.METRICS_URL: "http://0251.0376.0251.0376/latest/meta-data"}, "link-local"),
    ({c.METRICS_URL: "http://169.254.43518/latest/meta-data"}, "link-local"),
    ({c.METRICS_URL: "http://[::ffff:169.254.169.254]/latest/meta-data"}, "link-local"),
    ({c.METRICS_URL: "http://[::ffff:a9fe:a9fe]/latest/meta-data"}, "link-local"),
    ({c.METRICS_URL: "http://0:9090/metrics"}, "unspecified"),
    ({c.METRICS_URL: "http://host/metrics#x"}, "fragment"),
    ({c.COUNTER: "http-requests"}, c.COUNTER),
    ({c.COUNTER: None}, "required"),
    ({c.THRESHOLD: "ten"}, "number"),
    ({c.THRESHOLD: "-1"}, "between"),
    ({c.THRESHOLD: "nan"}, "between"),
    ({c.CONFIGMAP: "../secrets"}, c.CONFIGMAP),
    ({c.CONFIGMAP: "Web"}, c.CONFIGMAP),
    ({c.CONFIGMAP: "a/b"}, c.CONFIGMAP),
    ({c.KEY: "a/b"}, c.KEY),
    ({c.KEY: ""}, c.KEY),
    ({c.KEY: "."}, c.KEY),  # keys the apiserver refuses in a ConfigMap
    ({c.KEY: "..data"}, c.KEY),
    ({c.HIGH: "quiet"}, "differ"),
    ({c.HIGH: "x" * 5000}, "at most"),
    ({c.BAND: "1.5"}, c.BAND),
    ({c.MIN_SECONDS: "-3"}, c.MIN_SECONDS),
    ({c.INTERVAL: "0"}, c.INTERVAL),
])
def test_every_annotation_is_validated(change: dict[str, str | None], fragment: str) -> None:
    annotations = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as exc:
        parse_config(annotations)
    assert fragment in str(exc.value)


def test_https_and_ip_hosts_are_fine() -> None:
    for url in ("https://metrics.example.com/m?token=x", "http://10.0.0.7:8080/metrics",
                "http://[::1]:9090/metrics"):
        assert parse_config({**GOOD, c.METRICS_URL: url}) is not None
    assert safe_url("https://h:1/m?token=secret") == "https://h:1/m"


def test_rate_from_successive_readings_and_resets() -> None:
    assert rate(None, (10.0, 100.0)) is None
    assert rate((10.0, 100.0), (10.0, 120.0)) is None  # no time passed
    assert rate((10.0, 100.0), (12.0, 120.0)) == 10.0
    assert rate((10.0, 100.0), (12.0, 30.0)) == 15.0  # reset: 30 since the restart
    assert rate((10.0, 100.0), (12.0, 100.0)) == 0.0


def test_hysteresis_band_and_minimum_time_in_state() -> None:
    cfg = parse_config({**GOOD, c.BAND: "0.2", c.MIN_SECONDS: "30"})
    assert cfg is not None
    assert next_state("normal", 0, 100, 10.0, cfg) == "normal"  # at the threshold: not above
    assert next_state("normal", 0, 100, 10.1, cfg) == "high"
    assert next_state("high", 0, 100, 9.0, cfg) == "high"  # inside the band
    assert next_state("high", 0, 100, 8.1, cfg) == "high"
    assert next_state("high", 0, 100, 7.9, cfg) == "normal"
    assert next_state("normal", 90, 100, 50.0, cfg) == "normal"  # only 10 s in state
    assert next_state("high", 90, 100, 0.0, cfg) == "high"
    assert next_state("normal", 70, 100, 50.0, cfg) == "high"  # 30 s: may change


def test_scrape_timeout_bounds_the_whole_response() -> None:
    """A server that answers its headers at once, then drips the body a byte at a time
    (each byte well within the socket timeout) must not hold a worker past the timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            body = b"# TYPE http_requests_total counter\nhttp_requests_total 1\n" * 4
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body))
            for byte in body:
                if done.wait(0.2):
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(bytes([byte]))

    threading.Thread(target=drip, daemon=True, name="pycontroller-test-drip").start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/metrics"
    started = time.monotonic()
    try:
        with pytest.raises(ScrapeError, match="timed out"):
            scrape(url, "http_requests_total", timeout=1.0)
        # The whole body would take about 46 s; a read in progress at the deadline gets at
        # most one more socket timeout.
        assert time.monotonic() - started < 2.0 + 1.0
    finally:
        done.set()
        listener.close()


@pytest.fixture
def counter_url() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving ``http_requests_total 7``."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"# TYPE http_requests_total counter\nhttp_requests_total 7\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True,
                     name="pycontroller-test-counter").start()
    try:
        yield f"http://metrics.example.test:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def resolve_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    """Make ``metrics.example.test`` resolve to ``addresses`` (no DNS in tests)."""
    real = socket.getaddrinfo

    def fake(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host != "metrics.example.test":
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.mark.parametrize("address", ["169.254.169.254", "::ffff:169.254.169.254",
                                     "fe80::1", "0.0.0.0", "224.0.0.1"])
def test_a_name_resolving_to_a_refused_address_is_not_scraped(
        monkeypatch: pytest.MonkeyPatch, counter_url: str, address: str) -> None:
    resolve_to(monkeypatch, address)
    with pytest.raises(ScrapeError, match=r"resolves to .*is not scraped"):
        scrape(counter_url, "http_requests_total", timeout=2.0)


def test_refused_addresses_are_skipped_for_allowed_ones_and_proxies_are_not_used(
        monkeypatch: pytest.MonkeyPatch, counter_url: str) -> None:
    resolve_to(monkeypatch, "169.254.169.254", "127.0.0.1")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # would refuse the connection
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert scrape(counter_url, "http_requests_total", timeout=2.0) == 7.0
    local = counter_url.replace("metrics.example.test", "localhost")  # real resolution
    assert scrape(local, "http_requests_total", timeout=2.0) == 7.0
