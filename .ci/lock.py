"""Write the lock files (pip constraints) that `make install` and CI install from: `make lock`.

    python3 .ci/lock.py [--only dev|serve|label-studio]

Each environment's requirements are resolved by pip itself (`pip install --dry-run --ignore-installed
--report`), which installs nothing, and every package of the answer is written as `name==version` to
locks/<env>.txt, headed by the Python and platform it was resolved on. The environments:
    dev           requirements-dev.txt (the project's venv: `make install`, the tests)
    serve         the package's `serve` extra (`.ci/serve_install_check.py`'s venv without PyTorch)
    label-studio  locks/label-studio.in (`.ci/label_studio_venv.sh`: the real-server test's Label Studio)
pip, setuptools and wheel are locked too, so that the venv's own tools do not move either.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "locks"
TOOLS = ["pip", "setuptools>=77", "wheel"]
ENVIRONMENTS: dict[str, list[str]] = {
    "dev": ["-r", str(ROOT / "requirements-dev.txt")],
    "serve": [f"{ROOT}[serve]"],
    "label-studio": ["-r", str(LOCKS / "label-studio.in")],
}
PROJECT = "fashionstyle"  # the project itself is installed from the checkout, never from the lock


def resolve(requirements: list[str]) -> dict[str, str]:
    """{name: version} of everything pip would install for `requirements` into an empty environment."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", str(report), *TOOLS, *requirements], check=True)
        installs = json.loads(report.read_text())["install"]
    versions = {item["metadata"]["name"]: item["metadata"]["version"] for item in installs}
    versions.pop(PROJECT, None)
    return versions


def header(name: str) -> str:
    return (f"# locks/{name}.txt: every package of the `{name}` environment at one version (pip constraints).\n"
            f"# Written by `make lock` (.ci/lock.py) on {datetime.date.today().isoformat()} with Python "
            f"{platform.python_version()} on {sys.platform} {platform.machine()}; do not edit by hand.\n")


def write_lock(name: str) -> Path:
    versions = resolve(ENVIRONMENTS[name])
    lines = [f"{package}=={versions[package]}" for package in sorted(versions, key=str.lower)]
    path = LOCKS / f"{name}.txt"
    path.write_text(header(name) + "\n".join(lines) + "\n")
    print(f"{path.relative_to(ROOT)}: {len(lines)} packages", flush=True)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(ENVIRONMENTS), help="one environment (default: all)")
    args = parser.parse_args()
    for name in [args.only] if args.only else ENVIRONMENTS:
        write_lock(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
