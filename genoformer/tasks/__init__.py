"""Downstream tasks: variant-effect scoring, variant classification, region classification, baselines."""
