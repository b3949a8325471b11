"""``python -m examples.configmap_stamper``: run the stamper (the common flags of
``pycontroller.cli.App``; ``--local`` starts a local control plane)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pycontroller.cli import App

from .controller import ConfigMapStamper


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return App("configmap-stamper", description=__doc__).run(
        lambda opts: [ConfigMapStamper()], argv)


if __name__ == "__main__":
    sys.exit(main())
