"""Which proxy, if any, carries traffic to the API server (≙ Go's ProxyFromEnvironment)."""

from __future__ import annotations

import ipaddress
import os
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def bypasses_proxy(url: str, no_proxy: str) -> bool:
    """Whether ``url``'s host matches a ``NO_PROXY`` list, by Go's rules.

    Entries are comma-separated: ``*`` (everything), an IP address, a CIDR block, or a
    domain with an optional ``:port``. ``example.com`` matches it and its subdomains;
    ``.example.com`` and ``*.example.com`` match subdomains only. Case-insensitive.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        return False
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        port = None
    try:
        ip: _IP | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    entries = (e.strip().lower() for e in no_proxy.split(","))
    return any(_matches(e, host, ip, "" if port is None else str(port)) for e in entries if e)


def _matches(entry: str, host: str, ip: _IP | None, port: str) -> bool:
    if entry == "*":
        return True
    if "/" in entry:
        try:
            return ip is not None and ip in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    entry_host, entry_port = _split_port(entry)
    if entry_port and entry_port != port:
        return False
    try:
        entry_ip = ipaddress.ip_address(entry_host)
    except ValueError:
        entry_ip = None
    if entry_ip is not None:
        return ip == entry_ip  # an IP entry matches only that IP
    if entry_host.startswith("*."):
        entry_host = entry_host[1:]
    subdomains_only = entry_host.startswith(".")
    suffix = entry_host if subdomains_only else "." + entry_host
    return host.endswith(suffix) or (not subdomains_only and host == entry_host)


def _split_port(entry: str) -> tuple[str, str]:
    if entry.startswith("["):  # [v6]:port
        host, _, rest = entry[1:].partition("]")
        return host, rest.removeprefix(":")
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, port if port.isdigit() else ""
    return entry, ""


def choose_proxy(cfg: Any) -> str | None:
    """The proxy URL for ``cfg.host``, or None to connect directly.

    A kubeconfig's ``proxy-url`` (or a ``proxy`` set on the configuration) is used as it
    is, as client-go does. Otherwise the environment decides: ``HTTPS_PROXY`` (or
    ``HTTP_PROXY`` for an ``http://`` server) unless ``NO_PROXY`` matches the server.
    """
    proxy = getattr(cfg, "proxy", None)
    # ``kubernetes`` fills ``proxy`` from HTTP(S)_PROXY itself; 37.x says so here. Older
    # versions (35.x) do it without saying, so there a proxy equal to one of those
    # variables counts as from the environment (and NO_PROXY applies to it).
    env_values = {os.environ.get(name) for name in
                  ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")} - {None, ""}
    from_env = getattr(cfg, "_proxy_from_env", proxy is None or proxy in env_values)
    if proxy and not from_env:
        return str(proxy)
    host = str(cfg.host)
    env = getproxies()
    proxy = env.get(urlsplit(host).scheme)
    if not proxy:
        return None
    no_proxy = getattr(cfg, "no_proxy", None) or env.get("no", "")
    return None if bypasses_proxy(host, no_proxy) else proxy
