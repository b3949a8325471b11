"""Runnable example controllers (they use only the public API)."""
