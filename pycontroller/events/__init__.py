"""Kubernetes Events (``events.k8s.io/v1``) posted in the background: ``EventRecorder``."""

from pycontroller.events._recorder import EventRecorder

__all__ = ["EventRecorder"]

EventRecorder.__module__ = __name__
