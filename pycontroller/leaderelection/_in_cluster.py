"""The namespace of the Pod this process runs in, from its service-account mount."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pycontroller._util._paths import check_path_segment

SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def in_cluster_namespace(path: Path | None = None) -> str | None:
    """The Pod's own namespace, read from the service-account mount; None outside a Pod.

    ``path`` defaults to ``SERVICE_ACCOUNT_NAMESPACE``.

    Raises:
        ValueError: the file holds something that is not a namespace name.
    """
    try:
        text = (path or SERVICE_ACCOUNT_NAMESPACE).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return check_path_segment("namespace (service-account mount)", text)
