"""Errors that are the user's to fix: the CLI prints them as one line and exits with code 2."""


class GenoformerError(Exception):
    """A user mistake (bad file, bad flag, mismatch). Message names the file, the record and the problem."""

    exit_code = 2


class InputError(GenoformerError):
    """A file's content is malformed, empty or truncated."""


class MismatchError(GenoformerError):
    """Two inputs disagree: contig names, REF alleles, vocabulary or k between data and model."""


class MissingFileError(GenoformerError):
    """A file the user named does not exist (or an index it needs is missing)."""


class ConfigError(GenoformerError):
    """A configuration key or value is unknown or out of range."""
