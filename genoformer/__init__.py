"""genoformer: long-context DNA language models with a Reformer, from FASTA to variant scores."""

__version__ = "0.1.0"
