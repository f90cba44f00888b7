"""Limits of a token dataset, in a module without imports: the CLI's parser shows them in its help."""

MAX_WINDOW = 1 << 20  # tokens in one window
