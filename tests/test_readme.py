"""The README tells the truth: every command and option is documented, the two commands come first."""

from __future__ import annotations

import click

from conftest import REPO
from generator.cli import main

README = (REPO / "README.md").read_text("utf-8")


def commands(group: click.Group, prefix: str = "serialist") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, f"{prefix} {name}")
        else:
            found.append((f"{prefix} {name}", command))
    return found


def test_every_command_and_option_is_documented():
    section = README.split("## Command line", 1)[1].split("\n## Themes", 1)[0]
    for name, command in commands(main):
        assert f"`{name}" in section, name
        for param in command.params:
            for option in param.opts:
                if option.startswith("--") and option != "--help":
                    assert f"`{option}" in section, f"{name} {option}"


def test_the_two_commands_open_the_readme():
    head = README.split("## Contents", 1)[0]
    blocks = [b.split("```", 1)[0].strip() for b in head.split("```sh\n")[1:]]
    assert blocks[0] == "pip install . && serialist build"
    assert blocks[1] == 'pip install -e ".[test]" && python -m pytest -n auto'
    assert blocks[1] in (REPO / ".ci" / "run").read_text()
