"""`python -m qqueue` runs the CLI."""

from qqueue.cli import main

main()
