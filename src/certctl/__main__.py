"""`python -m certctl`."""

from certctl.cli import main

main()
