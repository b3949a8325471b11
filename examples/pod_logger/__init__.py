"""pod-logger: logs pod creations, changes and deletions (with a real deletion reason)."""
