"""``python -m examples.configmap_stamper``: run the stamper against the configured cluster."""

from __future__ import annotations

import sys

from pycontroller import Manager, connect

from ..pod_logger.__main__ import configure_logging
from .controller import ConfigMapStamper


def main() -> int:
    """Entry point."""
    configure_logging("auto")
    manager = Manager(connect())
    manager.add(ConfigMapStamper())
    return manager.run()


if __name__ == "__main__":
    sys.exit(main())
