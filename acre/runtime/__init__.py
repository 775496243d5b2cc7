"""Run time: bundle + pot + policies + engines + session."""

from acre.runtime.session import Session

__all__ = ["Session"]
