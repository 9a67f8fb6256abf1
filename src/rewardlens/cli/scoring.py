"""`rewardlens score` and `rewardlens bench engine`."""
