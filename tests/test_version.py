"""`serialist --version` names the program and the package's version, as the program prints it."""

from __future__ import annotations

from conftest import run_cli
from generator import __version__


def test_version_prints_the_program_and_the_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"serialist {__version__}\n"
    assert result.stderr == ""
