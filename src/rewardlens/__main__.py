"""`python -m rewardlens`: the command line."""

from rewardlens.cli import main

main()
