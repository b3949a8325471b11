"""The per-Service configuration (annotations), validated, and the pure logic: rate from
successive counter readings and the hysteresis state machine."""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

PREFIX = "traffic-tuner.pycontroller.dev"
METRICS_URL = f"{PREFIX}/metrics-url"  # presence makes a Service managed
COUNTER = f"{PREFIX}/counter"
THRESHOLD = f"{PREFIX}/threshold-rps"
CONFIGMAP = f"{PREFIX}/configmap"
KEY = f"{PREFIX}/key"
HIGH = f"{PREFIX}/high-value"
NORMAL = f"{PREFIX}/normal-value"
BAND = f"{PREFIX}/band"  # optional: fraction below the threshold to return to normal
MIN_SECONDS = f"{PREFIX}/min-seconds-in-state"  # optional
INTERVAL = f"{PREFIX}/interval-seconds"  # optional

_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
MAX_VALUE = 4096


class ConfigError(ValueError):
    """An annotation is missing or invalid (the message names it)."""


@dataclass(frozen=True)
class TunerConfig:
    """What one Service asks for. Immutable."""

    url: str
    counter: str
    threshold: float
    configmap: str
    key: str
    high: str
    normal: str
    band: float
    min_seconds: float
    interval: float


def _number(annotations: Mapping[str, str], name: str, default: float | None, *,
            low: float, high: float) -> float:
    raw = annotations.get(name)
    if raw is None:
        if default is None:
            raise ConfigError(f"annotation {name} is required")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"annotation {name} must be a number, got {raw[:32]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"annotation {name} must be between {low:g} and {high:g}")
    return value


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` denotes as a literal, in every form the resolver accepts
    (``inet_aton``'s decimal, hex, octal and short forms: ``2852039166`` is
    169.254.169.254), an IPv4-mapped IPv6 address as its IPv4 address; None for a name."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def refused_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether the tuner must not connect to ``ip``: link-local (cloud metadata
    endpoints live there), multicast or unspecified; an IPv4-mapped IPv6 address is
    judged as its IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_link_local or ip.is_multicast or ip.is_unspecified


def check_url(url: str) -> str:
    """An http(s) URL with a host, without credentials or a fragment, and not link-local
    (cloud metadata endpoints live there).

    Raises:
        ConfigError: otherwise.
    """
    if len(url) > 2048 or any(c.isspace() or ord(c) < 32 for c in url):
        raise ConfigError(f"annotation {METRICS_URL} must be a URL without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"annotation {METRICS_URL} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"annotation {METRICS_URL} must be an http:// or https:// URL")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise ConfigError(f"annotation {METRICS_URL} needs a host and no user:password@")
    if parts.fragment or port == 0:
        raise ConfigError(f"annotation {METRICS_URL}: no #fragment, and a port 1-65535")
    ip = _address(parts.hostname)
    if ip is not None and refused_address(ip):
        raise ConfigError(f"annotation {METRICS_URL} must not point at a link-local, "
                          "multicast or unspecified address")
    return url


def parse_config(annotations: Mapping[str, str]) -> TunerConfig | None:
    """The Service's configuration; None when it is not managed (no metrics-url).

    Raises:
        ConfigError: an annotation is missing or invalid.
    """
    url = annotations.get(METRICS_URL)
    if url is None:
        return None
    check_url(url)

    def text(name: str) -> str:
        value = annotations.get(name)
        if value is None:
            raise ConfigError(f"annotation {name} is required")
        return value

    counter = text(COUNTER)
    if not _METRIC.fullmatch(counter):
        raise ConfigError(f"annotation {COUNTER} must be a Prometheus metric name")
    configmap = text(CONFIGMAP)
    if len(configmap) > 253 or not _SUBDOMAIN.fullmatch(configmap):
        raise ConfigError(f"annotation {CONFIGMAP} must be a ConfigMap name (RFC 1123)")
    key = text(KEY)
    if len(key) > 253 or not _CONFIG_KEY.fullmatch(key) or key == "." or key.startswith(".."):
        raise ConfigError(f"annotation {KEY} must be a ConfigMap key ([-._a-zA-Z0-9]+, not "
                          "'.', not starting with '..')")
    high, normal = text(HIGH), text(NORMAL)
    if len(high) > MAX_VALUE or len(normal) > MAX_VALUE:
        raise ConfigError(f"annotations {HIGH} and {NORMAL} hold at most {MAX_VALUE} characters")
    if high == normal:
        raise ConfigError(f"annotations {HIGH} and {NORMAL} must differ")
    return TunerConfig(
        url=url, counter=counter,
        threshold=_number(annotations, THRESHOLD, None, low=1e-9, high=1e12),
        configmap=configmap, key=key, high=high, normal=normal,
        band=_number(annotations, BAND, 0.2, low=0.0, high=0.99),
        min_seconds=_number(annotations, MIN_SECONDS, 60.0, low=0.0, high=86400.0),
        interval=_number(annotations, INTERVAL, 15.0, low=0.1, high=3600.0))


def rate(previous: tuple[float, float] | None, current: tuple[float, float]) -> float | None:
    """Per-second rate between two ``(time, counter value)`` readings; None without a
    previous reading or time passing. A counter that went down was reset (its process
    restarted): the increase since the reset is the new value, as Prometheus counts it."""
    if previous is None:
        return None
    (t0, v0), (t1, v1) = previous, current
    if t1 <= t0:
        return None
    increase = v1 if v1 < v0 else v1 - v0
    return increase / (t1 - t0)


def next_state(state: str, since: float, now: float, rps: float, config: TunerConfig) -> str:
    """``"high"`` or ``"normal"`` after a reading of ``rps`` at ``now``, in ``state`` since
    ``since``. Up above the threshold; down only below ``threshold * (1 - band)``; and no
    change before ``min_seconds`` in the current state."""
    if now - since < config.min_seconds:
        return state
    if state == "normal" and rps > config.threshold:
        return "high"
    if state == "high" and rps < config.threshold * (1.0 - config.band):
        return "normal"
    return state
