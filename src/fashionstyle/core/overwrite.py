"""Refuse a command line whose output would overwrite one of its inputs.

    refuse_overwriting_inputs({"--out": args.out}, {"--labels": args.labels})
    # issues.csv: would overwrite the input --labels issues.csv; choose another --out
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

from fashionstyle.core.errors import FashionStyleError

PathLike = Union[str, os.PathLike]
Paths = Union[PathLike, Iterable[PathLike], None]  # one path, several, or none (an option not given)


def refuse_overwriting_inputs(outputs: Mapping[str, Paths], inputs: Mapping[str, Paths]) -> None:
    """Raise FashionStyleError when a path a command writes is one it reads.

    `outputs` and `inputs` map the option that names them (`--out`, `--labels`, `run`) to a path, a few
    paths, or None. Two paths are the same when they resolve alike (symbolic links, `..`) or, both
    existing, are one file (hard links, case-insensitive file systems).
    """
    for out_flag, out_paths in outputs.items():
        for out in _paths(out_paths):
            for in_flag, in_paths in inputs.items():
                for source in _paths(in_paths):
                    if _same(out, source):
                        raise FashionStyleError(f"{out}: would overwrite the input {in_flag} {source}; "
                                                f"choose another {out_flag}")


def _paths(value: Paths) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value if v is not None]


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


RUN_FILES = ("manifest.json", "config.yaml", "labels.json", "thresholds.json", "operating_points.json", "tta.json", "members.json",
             "model.pt", "val_probs.npz")


def run_inputs(run: Any) -> list[Path]:
    """The files of a run directory (a RunDir) that predicting from it reads, its model files included."""
    return [run / name for name in RUN_FILES] + [member.model for member in run.members()]


def refuse_run_folder(out: PathLike) -> None:
    """Raise FashionStyleError when the folder `out` holds a run (its manifest.json): writing an export
    there would replace that run's labels, thresholds and members."""
    if (Path(out) / "manifest.json").is_file():
        raise FashionStyleError(f"{out}: holds a run (manifest.json); writing there would replace its files; "
                                "choose another --out")
