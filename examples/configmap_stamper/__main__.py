"""``python -m examples.configmap_stamper``: run the stamper against the configured cluster."""

from __future__ import annotations

import sys

from examples.configmap_stamper.controller import ConfigMapStamper
from examples.pod_logger.__main__ import configure_logging
from pycontroller import Manager, connect


def main() -> int:
    """Entry point."""
    configure_logging("auto")
    manager = Manager(connect())
    manager.add(ConfigMapStamper())
    return manager.run()


if __name__ == "__main__":
    sys.exit(main())
