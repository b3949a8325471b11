"""configmap-stamper: a reconcile-loop example (writes back to the API)."""
