"""A fresh venv, a non-editable `pip install` of this checkout, and a build run from elsewhere.

Proves the package installs with its theme as data: nothing may depend on the
checkout being beside the installed code or on the working folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent  # the checkout this test file belongs to

# pip's words when it could not reach an index: then the machine is offline, not the package broken.
# ("No matching distribution found" alone is not one of them: a misspelt dependency must fail the test.)
OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
                     r"Name or service not known|Network is unreachable|ConnectTimeoutError|ReadTimeoutError|"
                     r"ProxyError|SSLError", re.I)


def clean_env() -> dict[str, str]:
    """The environment without anything that would let the venv see this checkout or the test's packages."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONSAFEPATH")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(*args: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def build_backend_present(python: Path, cwd: Path) -> bool:
    """Whether the venv already has a setuptools that meets `[build-system] requires` (then skip isolation)."""
    requires = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["build-system"]["requires"]
    for spec in map(Requirement, requires):
        found = run(python, "-c", f"import importlib.metadata as m; print(m.version({spec.name!r}))", cwd=cwd)
        if found.returncode != 0 or not spec.specifier.contains(found.stdout.strip(), prereleases=True):
            return False
    return True


@pytest.mark.slow
def test_fresh_venv_install_and_build_from_elsewhere(tmp_path: Path) -> None:
    assert (REPO / "pyproject.toml").is_file() and (REPO / "themes" / "default" / "templates").is_dir()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"

    # Install from a copy, so that the build leaves no `build/` or `*.egg-info` in the checkout.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "output", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
        ".serialist-cache", ".output.serialist-*"))
    isolation = ["--no-build-isolation"] if build_backend_present(python, tmp_path) else []
    installed = run(python, "-m", "pip", "install", "--no-input", *isolation, str(source), cwd=tmp_path)
    if installed.returncode != 0 and OFFLINE.search(installed.stdout + installed.stderr):
        pytest.skip("pip could not download the build requirements or dependencies (no network?):\n"
                    + (installed.stderr or installed.stdout)[-2000:])
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    # The venv runs the installed copy, not the checkout.
    where = run(python, "-c", "import generator; print(generator.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    module = Path(where.stdout.strip()).resolve()
    assert module.is_relative_to(venv.resolve()), module
    shutil.rmtree(source)  # nothing may still point at the source the package was installed from

    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(REPO / "site.toml", site / "site.toml")
    shutil.copytree(REPO / "content", site / "content")
    serialist = bin_dir / "serialist"
    result = run(serialist, "build", "site", "--output", "public", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Built 3 stories" in result.stdout

    out = tmp_path / "public"
    index = out / "index.html"
    assert index.is_file() and "Salt and Signal" in index.read_text("utf-8")
    css = out / "assets" / "style.css"
    assert css.is_file()
    assert css.read_bytes() == (REPO / "themes" / "default" / "static" / "style.css").read_bytes()
    assert (out / "the-last-ferry" / "chapter-1" / "index.html").is_file()
    assert not (site / "output").exists()
