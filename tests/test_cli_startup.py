"""CLI startup: ``--help`` and ``--version`` build the parser without importing the heavy libraries."""

import subprocess
import sys

import pytest

from genoformer import __version__
from genoformer.cli import COMMANDS, main

HEAVY = ("torch", "sklearn", "matplotlib", "pandas", "scipy", "numpy", "pysam", "pyfaidx", "Bio")


def test_building_the_parser_imports_no_heavy_library():
    code = ("import sys, genoformer.cli; genoformer.cli.build_parser(); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_version_prints_the_version():
    result = subprocess.run([sys.executable, "-m", "genoformer", "--version"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    assert result.stdout.strip() == f"genoformer {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: genoformer {command}" in capsys.readouterr().out
