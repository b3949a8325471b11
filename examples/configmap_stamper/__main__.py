"""``python -m examples.configmap_stamper``: run the stamper against the configured cluster."""

from __future__ import annotations

import sys

from pycontroller import Manager, connect
from pycontroller.cli import configure_logging
from pycontroller.errors import Error

from .controller import ConfigMapStamper


def main() -> int:
    """Entry point; a configuration or start-up failure is one line on stderr and exit 1."""
    configure_logging("auto")
    try:
        manager = Manager(connect())
        manager.add(ConfigMapStamper())
        return manager.run()
    except (Error, OSError) as exc:  # no kubeconfig, a port in use
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"configmap-stamper: {' '.join(str(reason).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
