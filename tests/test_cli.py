"""The `serialist` program around its commands (`cli.run`)."""

from __future__ import annotations

import gc
import sys

import pytest

from generator import cli


def test_the_program_collects_cycles_less_often_and_leaves_with_the_commands_status(monkeypatch):
    seen: dict[str, tuple[int, ...]] = {}

    def command() -> None:
        seen["threshold"] = gc.get_threshold()
        sys.exit(3)

    def leave(status: int) -> None:
        raise SystemExit(("left", status))

    monkeypatch.setattr(cli, "main", command)
    monkeypatch.setattr(cli.os, "_exit", leave)
    before = gc.get_threshold()
    try:
        with pytest.raises(SystemExit) as left:
            cli.run()
    finally:
        gc.set_threshold(*before)
    assert left.value.code == ("left", 3)
    assert seen["threshold"] == (cli.GC_FIRST_THRESHOLD, *before[1:])
    assert cli.GC_FIRST_THRESHOLD > before[0]
