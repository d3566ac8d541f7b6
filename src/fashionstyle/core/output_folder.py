"""Folders a command writes into (report, explain, hub exports): its own, or new, never a user's.

    claim_folder("maps/", "explain")   # makes it, or takes it back; refuses a folder it did not make

A folder a command makes holds a marker file naming that command; a later run of the same command
writes into it again, while a non-empty folder without its marker (a user's files, another command's
output) is refused in one line before anything is written.
"""
from __future__ import annotations

from pathlib import Path

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError

MARKER = ".fashionstyle"  # its text: the command that made the folder


def folder_owner(folder: Path) -> str | None:
    """The command that made `folder`, None when no fashionstyle command did."""
    marker = folder / MARKER
    return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None


def claim_folder(folder: str | Path, command: str) -> Path:
    """`folder`, made (or kept) as `command`'s output folder; refuses a file, a non-empty folder of the
    user's and one that another command made."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FashionStyleError(f"{folder}: is a file; --out of {command} is a folder")
    if folder.is_dir() and any(folder.iterdir()):
        owner = folder_owner(folder)
        if owner != command:
            made = f"holds the output of `fashionstyle {owner}`" if owner else "holds files fashionstyle did not write"
            raise FashionStyleError(f"{folder}: {made}; choose an empty or new --out for {command}")
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / MARKER, command + "\n")
    return folder
