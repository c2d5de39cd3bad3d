"""``python -m jobrunner``: the ``jobrunner`` command, for environments without its script."""

from jobrunner.cli import main

main()
