"""Shared fixtures: scratch sites written from a dict, the sample site, the CLI."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_SITE = REPO
# A fixed "now" so that tests do not depend on the day they run.
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write dedented `files` (path → text or bytes) under `root`."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), "utf-8")
    return root


def zip_layout(zipped: bytes) -> list[tuple[object, ...]]:
    """Everything a zip says of its entries but how they are compressed, and their contents: what two zips
    deflated differently have in common when they hold the same."""
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        return [(info.filename, info.date_time, info.compress_type, info.create_system, info.external_attr,
                 info.flag_bits, info.extra, info.CRC, info.file_size, archive.read(info))
                for info in archive.infolist()]


@pytest.fixture
def make_site(tmp_path: Path):
    """`make_site({"content/s/story.md": "...", ...})` → the site folder."""

    def make(files: dict[str, str | bytes], name: str = "site") -> Path:
        return write_files(tmp_path / name, files)

    return make


def copy_sample(folder: Path) -> Path:
    """A copy of the repository's sample site (site.toml + content/) in `folder`."""
    folder.mkdir(parents=True)
    shutil.copy(SAMPLE_SITE / "site.toml", folder / "site.toml")
    shutil.copytree(SAMPLE_SITE / "content", folder / "content")
    return folder


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A copy of the repository's sample site (site.toml + content/)."""
    return copy_sample(tmp_path / "sample")


def run_cli(*args: str | Path, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `python -m generator ARGS` as a user would, capturing output."""
    result = subprocess.run([sys.executable, "-m", "generator", *map(str, args)], cwd=cwd,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"serialist {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (dot-files included) → its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


STORY = """\
---
title: A Story
rating: General Audiences
status: ongoing
---
A summary.
"""


def chapter(title: str = "One", date: str = "2025-01-01", body: str = "Some words here.", extra: str = "") -> str:
    return f"---\ntitle: {title}\ndate: {date}\n{extra}---\n{body}\n"


def require_java() -> None:
    """Skip, with the reason, a test whose validator runs on Java when there is none."""
    if shutil.which("java") is None:
        pytest.skip("this validator needs Java (apt-get install default-jre-headless)")


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at the existing `folder` while the block runs; the test is skipped, with the reason,
    where mounting needs what this machine does not give (root and mount(8))."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a file system needs root and mount(8)")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)])
