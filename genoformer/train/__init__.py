"""Masked-LM pretraining: span masking, training loop, checkpoints, distributed, evaluation, Markov baseline."""
