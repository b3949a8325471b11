"""A command-line front end for controller programs: the common flags, validated, and logging.

::

    from pycontroller.cli import App

    app = App("restart-scaler", description=__doc__)
    app.parser.add_argument("--threshold", type=positive_int, default=3)
    sys.exit(app.run(lambda opts: [RestartScaler(threshold=opts.threshold)]))

Every flag is validated before anything starts; a bad value prints one line
(``prog: argument --flag: ...``) on stderr and exits 2, and a runtime failure the user can fix (an
unreadable kubeconfig, a port in use) prints one line and exits 1 — never a traceback.
"""

from pycontroller.cli._app import (
    App,
    LocalCluster,
    configure_logging,
    dns_label,
    dns_subdomain,
    non_negative_float,
    positive_float,
    positive_int,
)

__all__ = [
    "App",
    "LocalCluster",
    "configure_logging",
    "dns_label",
    "dns_subdomain",
    "non_negative_float",
    "positive_float",
    "positive_int",
]
