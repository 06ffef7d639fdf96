"""What every hpcrl daemon does the same way: key=value logging, and signals that only ask the
main loop to stop (the loop then drains, closes its sockets and exits 0)."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)


def on_stop_signal(request_stop: Callable[[], None]) -> None:
    """Call request_stop() on SIGTERM or SIGINT; it must only set a flag."""

    def handler(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal=%s: stopping", signal.Signals(signum).name)
        request_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def log_config(name: str, config: object) -> None:
    """Log the resolved configuration once at start, so every run's settings are on record."""
    logging.getLogger(name).info("config %r", config)
