"""`python -m qqueue.cli` runs the CLI, as `python -m qqueue` does."""

from qqueue.cli import main

main()
