"""The Reformer: LSH hashing, LSH attention, reversible residual stack, chunked feed-forward, heads."""
