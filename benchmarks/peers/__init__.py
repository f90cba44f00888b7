"""Small adapters that build each peer model for the GPU benchmarks (the peers' own code is never committed).

Every adapter has ``build(seq_len, vocab_size, dim, depth, heads) -> nn.Module`` whose ``forward(input_ids
[B, N]) -> logits [B, N, vocab_size]`` is one masked-LM forward pass, so the benchmark drives them alike.
Dropout is off everywhere, so every model does the same work per step.
"""
