"""``python -m dispatcher.cli``: the ``dispatcher`` command."""

from . import app

app()
