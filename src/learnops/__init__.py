"""learnops: train, evaluate and ship the models behind adaptive-learning agents."""

__version__ = "0.1.0"
