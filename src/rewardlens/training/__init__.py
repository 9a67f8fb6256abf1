"""Reward-model training ablations: preference data, the Bradley–Terry trainer, the grid, checkpoint analysis."""

from rewardlens.training.data import PreferenceData, PreferencePair, load_preference_data
from rewardlens.training.train import TrainingConfig, TrainResult, parse_lora, read_training, train_reward_model

__all__ = [
    "PreferenceData",
    "PreferencePair",
    "TrainResult",
    "TrainingConfig",
    "load_preference_data",
    "parse_lora",
    "read_training",
    "train_reward_model",
]
