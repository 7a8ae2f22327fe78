"""``python -m hub``: the same as the ``hub`` command."""

from hub.cli.main import main

main()
