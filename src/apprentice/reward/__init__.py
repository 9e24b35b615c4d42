"""Reward models from human preferences: data from judgments, losses, the model, training, ensembles, evaluation."""
