"""pycontroller: client-go-style machinery for Kubernetes controllers in Python."""

__all__: list[str] = []
