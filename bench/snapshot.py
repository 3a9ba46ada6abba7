"""A snapshot of the product code, so every round of a run measures the same code even while
the working tree is being edited."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SKIP = {"bench", "tests", "dev", "scripts", "build"}


def packages(repo: Path) -> list[Path]:
    """The repository's top-level Python packages (common, sender, receiver, ...)."""
    return sorted(
        d
        for d in repo.iterdir()
        if d.is_dir() and d.name not in SKIP and (d / "__init__.py").exists()
    )


def snapshot(repo: Path, dest: Path) -> Path:
    """Copy the packages as they are now into `dest` (emptied first); put it on PYTHONPATH."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in packages(repo):
        shutil.copytree(package, dest / package.name, symlinks=True, ignore=ignore)
    return dest


def describe(repo: Path) -> dict[str, str]:
    """The commit, and which product files differ from it (the working tree is shared)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=repo)
        except OSError:
            return "?"
        return done.stdout.strip()

    names = [p.name for p in packages(repo)]
    dirty = git("status", "--short", "--", *names, "proto", "pyproject.toml")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": " ".join(line.split()[-1] for line in dirty.splitlines()) or "none",
    }
