"""rewardlens: audit what reward models value and where those values come from."""

__version__ = "0.1.0"
