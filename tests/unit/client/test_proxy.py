"""NO_PROXY matching by Go's rules and the Client's choice of proxy (issue 13, item 5)."""

from __future__ import annotations

import pytest
import urllib3
from kubernetes.client import Configuration

from pycontroller import Client
from pycontroller.client._proxy import bypasses_proxy


@pytest.mark.parametrize(("url", "no_proxy", "bypass"), [
    ("https://10.96.0.1:443", "10.96.0.1", True),
    ("https://10.96.0.1:443", "10.0.0.0/8", True),
    ("https://10.96.0.1:443", "10.96.0.2,192.168.0.0/16", False),
    ("https://10.96.0.1:6443", "10.96.0.1:6443", True),
    ("https://10.96.0.1:6443", "10.96.0.1:443", False),
    ("https://10.96.0.1", "10.96.0.1:443", True),
    ("https://api.example.com", "example.com", True),
    ("https://example.com", "example.com", True),
    ("https://example.com", ".example.com", False),
    ("https://api.example.com", ".example.com", True),
    ("https://api.example.com", "*.example.com", True),
    ("https://badexample.com", "example.com", False),
    ("https://API.Example.COM", " example.com ", True),
    ("https://anything", "*", True),
    ("https://[fd00::1]:443", "fd00::/64", True),
    ("https://[fd00::1]:443", "[fd00::1]:443", True),
    ("https://kubernetes.default.svc", "", False),
    ("https://kubernetes.default.svc", ",,", False),
])
def test_no_proxy_rules(url: str, no_proxy: str, bypass: bool) -> None:
    assert bypasses_proxy(url, no_proxy) is bypass


def _pool(monkeypatch: pytest.MonkeyPatch, host: str, **env: str) -> urllib3.PoolManager:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = Client(Configuration(host=host))
    pool = client._pool
    client.close()
    return pool


def test_client_honours_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = "http://127.0.0.1:3128"
    pool = _pool(monkeypatch, "https://10.96.0.1:443", HTTPS_PROXY=proxy)
    assert isinstance(pool, urllib3.ProxyManager)
    pool = _pool(monkeypatch, "https://10.96.0.1:443", HTTPS_PROXY=proxy, NO_PROXY="10.96.0.1")
    assert not isinstance(pool, urllib3.ProxyManager)
    pool = _pool(monkeypatch, "https://10.96.0.1:443", https_proxy=proxy,
                 no_proxy="10.96.0.0/12")
    assert not isinstance(pool, urllib3.ProxyManager)
    pool = _pool(monkeypatch, "https://10.96.0.1:443", HTTP_PROXY=proxy)
    assert not isinstance(pool, urllib3.ProxyManager)  # HTTP_PROXY is for http:// only


def test_explicit_proxy_ignores_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A kubeconfig's proxy-url is used as it is (client-go: NO_PROXY does not apply).
    monkeypatch.setenv("NO_PROXY", "*")
    cfg = Configuration(host="https://10.96.0.1:443")
    cfg.proxy = "http://127.0.0.1:3128"
    client = Client(cfg)
    assert isinstance(client._pool, urllib3.ProxyManager)
    client.close()
