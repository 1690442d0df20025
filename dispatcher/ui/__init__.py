"""The operator dashboard at ``/ui``: server-rendered pages (Jinja2, a little plain
JavaScript, no build step) for holders of an admin key."""

from .pages import mount

__all__ = ["mount"]
