"""The docs: the site builds with warnings as errors, works offline, and names only files that exist."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PATH_IN_TEXT = re.compile(r"`((?:src|bench|tests|docs|\.ci)/[\w./-]+)`")
MODULE_IN_TEXT = re.compile(r"`(\w+(?:/\w+)*\.(?:py|sh))`")  # a file name: under src/fashionstyle, bench, tests or .ci
SEARCHED = [ROOT / "src" / "fashionstyle", ROOT / "bench", ROOT / "tests", ROOT / ".ci"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.slow
def test_site_builds_strict_and_loads_nothing_from_outside(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)],
                           cwd=ROOT, env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    for page in tmp_path.rglob("*.html"):
        outside = re.findall(r'<(?:link|script|img)[^>]+(?:href|src)="(https?://[^"]+)"', page.read_text())
        assert not outside, (page.name, outside[:3])


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_a_page_names_exists(page):
    text = page.read_text(encoding="utf-8")
    named = {m for m in PATH_IN_TEXT.findall(text) if not any(c in m for c in "*<")}
    missing = sorted(m for m in named if not (ROOT / m.rstrip("/")).exists())
    missing += sorted(m for m in set(MODULE_IN_TEXT.findall(text)) if not any((d / m).exists() for d in [ROOT, *SEARCHED]))
    links = [link for link in LINK.findall(text) if not link.startswith(("http://", "https://", "mailto:"))]
    missing += sorted(link for link in links if not (page.parent / link).exists())
    assert not missing, missing


def test_readme_is_short_and_opens_with_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    first_screen = "\n".join(lines[:25])
    assert "make demo" in first_screen and "make test" in first_screen
