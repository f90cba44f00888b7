"""The workflow stages' ``extra`` options, read with the commands' own parsers before any job starts.

Config keys ``tokenize.extra``, ``score_variants.extra``, ``classify_variants.extra`` and ``classify_regions.extra``
each pass further options, verbatim, to one ``genoformer`` command. A misspelt option or a value of the wrong type
would otherwise stop that command's job, perhaps hours into a run (the classifiers run after pretraining);
:func:`stage_options` reads them as the command will and names the config key instead.
"""

from __future__ import annotations

import argparse
import importlib
import shlex

from genoformer.errors import ConfigError

# config section -> the genoformer command its rules run with the section's `extra`
EXTRA_COMMANDS = {
    "tokenize": "tokenize",
    "score_variants": "score-variants",
    "classify_variants": "classify-variants",
    "classify_regions": "classify-regions",
}


def stage_options(config: dict, stage: str, passed: tuple[str, ...] = ()) -> argparse.Namespace:
    """Config key ``<stage>.extra`` parsed by its command's parser after ``passed`` (options the rule gives
    before it, which ``extra`` may override as on the command line); options neither gives take their defaults,
    required ones None. Raises ConfigError naming the key for an unknown option or a value the parser refuses."""
    return _parse(config, stage, passed, defaults=True)


def given_options(config: dict, stage: str) -> set[str]:
    """The options (by argparse name: ``device`` for ``--device`` or a prefix of it such as ``--dev``) that config
    key ``<stage>.extra`` itself gives; the same errors as :func:`stage_options`."""
    return set(vars(_parse(config, stage, (), defaults=False))) - {"func"}


def tokenize_arguments(config: dict) -> argparse.Namespace:
    """The tokenize rules' command line as ``genoformer tokenize`` parses it: config ``tokenize`` k, stride and
    window, then its ``extra``."""
    settings = config["tokenize"]
    passed = ("--k", str(settings["k"]), "--stride", str(settings["stride"]), "--window", str(settings["window"]))
    return stage_options(config, "tokenize", passed)


def tokenize_options(config: dict, arguments: argparse.Namespace | None = None):
    """The :class:`~genoformer.tokenize.dataset.TokenizeOptions` the tokenize rules run with (from ``arguments``,
    :func:`tokenize_arguments`, when already parsed); raises ConfigError naming the config key for a value tokenize
    refuses."""
    from genoformer.commands import tokenize

    try:
        return tokenize.tokenize_options(tokenize_arguments(config) if arguments is None else arguments)
    except ConfigError as err:
        if str(err).startswith("config key"):
            raise
        raise ConfigError(f"config key tokenize: {err}") from None


def _parse(config: dict, stage: str, passed: tuple[str, ...], defaults: bool) -> argparse.Namespace:
    """``passed`` and config key ``<stage>.extra`` parsed by the stage's command's parser, required options made
    optional (the rules pass them); without ``defaults`` the namespace holds only the options given."""
    command = EXTRA_COMMANDS[stage]
    where = f"config key {stage}.extra"
    try:
        words = shlex.split(config.get(stage, {}).get("extra", ""))
    except ValueError as err:  # an unclosed quote
        raise ConfigError(f"{where}: {err}") from None

    def refuse(message: str):
        raise ConfigError(f"{where}: {message} (genoformer {command} would stop on it; see genoformer {command} "
                          "--help)")

    subparsers = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(f"genoformer.commands.{stage}").register(subparsers)
    parser = subparsers.choices[command]
    parser.error = refuse

    def leave(status: int = 0, message: str | None = None):  # -h/--help: argparse printed the help, then exits
        refuse("-h/--help prints the command's help; it is no option for a job")

    parser.exit = leave
    for required in (*parser._actions, *parser._mutually_exclusive_groups):
        required.required = False  # the rules pass those
    if not defaults:
        for action in parser._actions:
            action.default = argparse.SUPPRESS
    options, unknown = parser.parse_known_args([*passed, *words])
    if unknown:
        refuse(f"unrecognized arguments: {' '.join(unknown)}")
    return options
