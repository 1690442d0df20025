"""``python -m dispatcher``: the ``dispatcher`` command, for every subcommand."""

from .cli import app

app()
