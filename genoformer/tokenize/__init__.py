"""k-mer vocabulary, vectorized encoding, and sharded on-disk token datasets."""
