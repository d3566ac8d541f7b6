"""The blocks of docs/label-less.md marked `<!-- doc-test: NAME -->`, read as the tests run them: a shell block
as commands (each its environment and its argv, `export` lines setting the environment of the ones after),
a Python block as its text. Used by tests/test_label_studio_docs.py and tests/test_label_studio.py, so that
the doc and the real-server tests cannot differ."""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Mapping, NamedTuple

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "label-less.md"
BLOCK = re.compile(r"<!-- doc-test: (\S+) -->\n```(\w+)\n(.*?)\n```", re.S)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class Command(NamedTuple):
    env: dict[str, str]  # the variables the doc sets for it (inline, or exported before it)
    argv: list[str]


def doc_blocks(doc: Path = DOC) -> dict[str, tuple[str, str]]:
    """Marked block name -> (language, text)."""
    return {name: (language, text) for name, language, text in BLOCK.findall(doc.read_text(encoding="utf-8"))}


def shell_commands(text: str) -> list[Command]:
    """A shell block's commands: continuation lines joined, comments dropped, `VAR=value cmd` and `export`."""
    exported: dict[str, str] = {}
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "export":
            exported.update(word.split("=", 1) for word in words[1:])
            continue
        inline = [w for w in _leading(words, ASSIGNMENT)]
        commands.append(Command({**exported, **dict(w.split("=", 1) for w in inline)}, words[len(inline):]))
    return commands


def _leading(words: list[str], pattern: re.Pattern) -> list[str]:
    taken = []
    for word in words:
        if not pattern.match(word):
            break
        taken.append(word)
    return taken


def substituted(words: list[str], replace: Mapping[str, str]) -> list[str]:
    """`words` with each key of `replace` that starts a word (a path prefix, a URL) replaced by its value."""
    out = []
    for word in words:
        for old, new in replace.items():
            if word == old or word.startswith(old.rstrip("/") + "/"):
                word = new + word[len(old):]
                break
        out.append(word)
    return out


def label_studio_env(root: Path) -> dict[str, str]:
    """The environment docs/label-less.md starts Label Studio with, its document root moved to `root`."""
    (start,) = shell_commands(doc_blocks()["label-studio-start"][1])
    assert start.argv == ["label-studio", "start"], start.argv
    return {**start.env, "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(root)}


# -- a real Label Studio, started as the doc starts it ------------------------------------------------------------
TEST_USER = ("test@example.com", "fashionstyle-test")  # the account the doc's reader makes in the web page
TEST_TOKEN = "fashionstyle-test-token"                    # ... and the token of its Account & Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout_s: float, server: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise AssertionError(f"the server at {url} exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} not up after {timeout_s:.0f} s")


@contextlib.contextmanager
def running_label_studio(venv: Path, workdir: Path, root: Path) -> Iterator[tuple[str, str]]:
    """`label-studio start` with the doc's environment (document root `root`), on 127.0.0.1: (url, token).
    Only what a test needs is added: its own data folder (a copy of the venv's migrated template, so it starts
    in seconds), no browser, a free port, and the account and token a reader makes in the web page."""
    binary = venv / "bin" / "label-studio"
    if not binary.is_file():  # CI always builds one: a missing venv there is a failure, not a skip
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(
            f"no Label Studio venv at {venv} (FASHIONSTYLE_LABEL_STUDIO_VENV; .ci/label_studio_venv.sh makes it)")
    data = workdir / "ls-data"
    template = venv / "template-data"
    shutil.copytree(template, data) if template.is_dir() else data.mkdir()
    port = free_port()
    env = {**os.environ, **label_studio_env(root), "LABEL_STUDIO_BASE_DATA_DIR": str(data), "SENTRY_DSN": "",
           "HOST": ""}
    with (workdir / "label-studio.log").open("w") as log:
        server = subprocess.Popen([str(binary), "start", "--no-browser", "--host", "127.0.0.1", "-p", str(port),
                                   "--username", TEST_USER[0], "--password", TEST_USER[1], "--user-token", TEST_TOKEN],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_up(f"http://127.0.0.1:{port}/health", 900, server)
            yield f"http://127.0.0.1:{port}", TEST_TOKEN
        finally:
            server.terminate()
            server.wait(30)
