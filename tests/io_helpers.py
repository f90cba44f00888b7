"""Helpers shared by the reader tests (no tests here)."""

import os
import shutil
import subprocess
import sys

import pytest


def run_without_write_permission(code: str) -> subprocess.CompletedProcess:
    """Run Python ``code`` in a child process that obeys file permissions.

    Root ignores a read-only folder, so when the tests run as root the child drops CAP_DAC_OVERRIDE (with
    util-linux ``setpriv``) and then cannot write where the permission bits forbid it.
    """
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: a folder cannot be made unwritable")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def open_and_report(opener: str) -> str:
    """Child-process code that runs ``opener`` and prints the GenoformerError it raises, if any."""
    return (
        "from genoformer.errors import GenoformerError\n"
        "try:\n"
        f"    {opener}\n"
        "    print('OK')\n"
        "except GenoformerError as err:\n"
        "    print(type(err).__name__, err)\n"
    )
