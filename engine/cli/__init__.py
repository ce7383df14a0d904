"""The ``engine`` command line: ``validate``, ``schema``, ``init`` and ``run``."""

from .main import main

__all__ = ["main"]
