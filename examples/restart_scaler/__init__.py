"""restart-scaler: scale up the Deployment of a crash-looping Pod (bounded, idempotent)."""
