"""Subcommands of the genoformer CLI; each module registers one parser and calls into the library."""

from genoformer.errors import ConfigError


def check_range(flag: str, value, low, high=None) -> None:
    """Raise ConfigError naming ``flag`` and the allowed range unless ``low <= value`` (and ``value <= high``)."""
    if high is None and not value >= low:
        raise ConfigError(f"{flag} {value}: must be at least {low}")
    if high is not None and not low <= value <= high:
        raise ConfigError(f"{flag} {value}: must be from {low} to {high}")
