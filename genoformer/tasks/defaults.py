"""Default window sizes of the variant and region tasks, in a module without imports.

The CLI uses them as argparse defaults, so building the parser must not import the task modules (torch).
"""

DEFAULT_WINDOW = 131_072  # bp around a variant or region
DEFAULT_MASK_SPACING = 512  # bp between variants masked together in one LLR pass
