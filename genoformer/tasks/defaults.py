"""Defaults and limits of the variant and region tasks, in a module without imports.

The CLI uses them as argparse defaults, so building the parser must not import the task modules (torch).
"""

DEFAULT_WINDOW = 131_072  # bp around a variant or region
DEFAULT_MASK_SPACING = 512  # bp between variants masked together in one LLR pass
# The k-mer baselines hold a dense float64 row of 4**k (regions) or 2 * 4**k (variants) features per example:
# at k = 8 that is 0.5-1 MiB per example, at k = 20 already 8 TiB. 8 is also the tokenizer's largest k.
MAX_BASELINE_K = 8
# Every classifier output folder holds it: an existing --out without it is not replaced (atomic.check_replaceable).
CLASSIFIER_OUTPUT_MARKER = "metrics.json"
