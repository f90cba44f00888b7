"""Subcommands of the genoformer CLI; each module registers one parser and calls into the library."""

from genoformer.errors import ConfigError


def check_range(flag: str, value, low, high=None) -> None:
    """Raise ConfigError naming ``flag`` and the allowed range unless ``low <= value`` (and ``value <= high``)."""
    if high is None and not value >= low:
        raise ConfigError(f"{flag} {value}: must be at least {low}")
    if high is not None and not low <= value <= high:
        raise ConfigError(f"{flag} {value}: must be from {low} to {high}")


def add_repeat_copies_option(parser) -> None:
    """Add ``--keep-repeat-copies`` to a classifier command (its split leaves such copies out by default)."""
    parser.add_argument("--keep-repeat-copies", action="store_true",
                        help="keep examples whose near-identical copy is on the other side of a split: in the "
                        "test side, the folds that choose the regularization and the fine-tuning validation split "
                        "(default: leave them out); for tasks whose shared sequence says nothing of the label, e.g. "
                        "motifs written over reused background")


def check_test_fraction(value: float) -> None:
    """Raise ConfigError unless ``--test-fraction`` is strictly between 0 and 1 (checked before any work: the
    split comes only after every example has been scored)."""
    if not 0 < value < 1:
        raise ConfigError(f"--test-fraction {value}: must be greater than 0 and less than 1")
