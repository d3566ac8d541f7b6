"""Refuse an environment that holds a package the lock does not pin at that version: `make install` and CI.

    VENV/bin/python .ci/check_locked.py locks/dev.txt

Run with the environment's own Python (standard library only). Exit 1 names each package that is missing
from the lock or at another version, and says to run `make lock` after a change of requirements.
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

UNLOCKED = {"fashionstyle"}  # installed from the checkout itself


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    return pins


def strays(pins: dict[str, str]) -> list[str]:
    """'name version' for each installed distribution the lock does not pin at its version."""
    found = []
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"] or "")
        if name and name not in UNLOCKED and pins.get(name) != dist.version:
            found.append(f"{name} {dist.version} (lock: {pins.get(name, 'absent')})")
    return sorted(set(found))


def main() -> int:
    lock = Path(sys.argv[1])
    found = strays(read_lock(lock))
    if found:
        print(f"{sys.prefix} holds packages {lock} does not pin (run `make lock` after changing requirements): "
              + "; ".join(found), file=sys.stderr)
        return 1
    print(f"{sys.prefix}: every package at its version in {lock}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
