"""The structlog setups applications commonly use, capturing their output (issue 13, item 2)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog

Processors = list[Any]


def _default() -> Processors:
    # structlog's own defaults: ConsoleRenderer, which uses rich (locals shown) when installed.
    structlog.reset_defaults()
    return list(structlog.get_config()["processors"])


def _console(formatter: Any) -> Callable[[], Processors]:
    def build() -> Processors:
        return [structlog.processors.add_log_level, structlog.dev.set_exc_info,
                structlog.dev.ConsoleRenderer(colors=False, exception_formatter=formatter)]
    return build


def _better(sio: Any, exc_info: Any) -> None:
    with warnings.catch_warnings():  # structlog deprecates better-exceptions support
        warnings.simplefilter("ignore", DeprecationWarning)
        structlog.dev.better_traceback(sio, exc_info)


def _json_dict_tracebacks() -> Processors:
    # structlog's recipe for JSON logs with structured tracebacks (locals included).
    return [structlog.processors.add_log_level, structlog.dev.set_exc_info,
            structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]


def _json_plain() -> Processors:
    return [structlog.processors.add_log_level, structlog.dev.set_exc_info,
            structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]


def _key_value() -> Processors:
    return [structlog.processors.add_log_level, structlog.dev.set_exc_info,
            structlog.processors.format_exc_info, structlog.processors.KeyValueRenderer()]


CONFIGS: dict[str, Callable[[], Processors]] = {
    "default-console-rich": _default,
    "console-rich-locals": _console(structlog.dev.RichTracebackFormatter(show_locals=True)),
    "console-better-exceptions": _console(_better),
    "console-plain": _console(structlog.dev.plain_traceback),
    "json-dict-tracebacks": _json_dict_tracebacks,
    "json-format-exc-info": _json_plain,
    "key-value-format-exc-info": _key_value,
}


@contextmanager
def captured(config: str) -> Iterator[io.StringIO]:
    """Configure structlog as ``config`` does, writing to the yielded buffer; reset after."""
    out = io.StringIO()
    processors = CONFIGS[config]()
    structlog.configure(processors=processors,
                        logger_factory=structlog.PrintLoggerFactory(file=out),
                        cache_logger_on_first_use=False)
    try:
        yield out
    finally:
        structlog.reset_defaults()
