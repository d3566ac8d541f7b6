"""Checks of a run's own files before they are trusted (files users copy, edit, sync and publish).

    names = checked_label_names(data, "RUN/labels.json")      # unique, non-empty strings
    members = checked_members(data, "RUN/members.json", names)   # [(model, labels, weight)]
    check_run_files(path, names, tuner, member_labels)         # all of them, as RunDir.open does

Each refusal is one FashionStyleError line naming the file and the field. Torch-free.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.thresholds import ThresholdTuner


def checked_label_names(data: Any, source: str | Path) -> list[str]:
    """labels.json's `label_names`: a non-empty list of unique, non-empty strings."""
    names = data.get("label_names") if isinstance(data, dict) else None
    if not isinstance(names, list) or not names:
        raise FashionStyleError(f"{source}: label_names must be a non-empty list of label names, got {names!r}")
    return checked_names(names, f"{source}: label_names")


def checked_names(names: Any, where: str) -> list[str]:
    """A list of unique, non-empty strings, or a refusal naming `where`."""
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise FashionStyleError(f"{where} must be a list of non-empty strings, got {names!r}")
    twice = sorted(n for n, count in Counter(names).items() if count > 1)  # linear: 50,000 labels in ms
    if twice:
        raise FashionStyleError(f"{where}: {_some(twice)} listed more than once; each label once")
    return list(names)


def checked_members(data: Any, source: str | Path, names: list[str]) -> list[tuple[str, list[str], float]]:
    """members.json's `members`: a non-empty list of {model, labels, weight}, each label one of the
    run's and listed once per member, each weight a finite number > 0."""
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list) or not members:
        raise FashionStyleError(f"{source}: members must be a non-empty list of {{model, labels, weight}}, "
                                f"got {members!r}")
    checked, known = [], set(names)
    for k, member in enumerate(members):
        where = f"{source}: members[{k}]"
        if not isinstance(member, dict) or not isinstance(member.get("model"), str) or not member["model"]:
            raise FashionStyleError(f"{where}.model must name a model file of the run, got {member!r}")
        labels = checked_names(member.get("labels"), f"{where}.labels")
        unknown = [n for n in labels if n not in known]
        if unknown or not labels:
            raise FashionStyleError(f"{where}.labels: {_some(unknown) if unknown else 'none'} not among the "
                                    f"run's labels ({_some(names)})")
        weight = member.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (math.isfinite(weight)
                                                                                    and weight > 0):
            raise FashionStyleError(f"{where}.weight must be a finite number > 0, got {weight!r}")
        checked.append((member["model"], labels, float(weight)))
    return checked


def check_run_files(path: Path, names: list[str], tuner: ThresholdTuner | None,
                    member_labels: Sequence[Sequence[str]]) -> None:
    """Refuse a run (at `path`, labels.json's `names`) whose files disagree or hold values it cannot use,
    before anything reads or writes: config.yaml (a mapping; its label_names, where given, hold the run's:
    a single-label run's part keeps the whole list), thresholds (`tuner`, None without thresholds.json:
    one per label), members (every run label given by one of them)."""
    config = path / "config.yaml"
    if config.is_file():
        from fashionstyle.core.config import read_yaml

        listed = read_yaml(config).get("label_names")
        if listed is not None and not set(names) <= set(checked_names(listed, f"{config}: label_names")):
            raise FashionStyleError(f"{config}: label_names {_some(listed)} differ from labels.json's {_some(names)}")
    if tuner is not None and len(tuner.thresholds_) != len(names):
        raise FashionStyleError(f"{path / 'thresholds.json'}: thresholds has {len(tuner.thresholds_)} values for "
                                f"the {len(names)} labels of labels.json ({_some(names)})")
    given = {n for labels in member_labels for n in labels}
    missing = [n for n in names if n not in given]
    if missing:
        raise FashionStyleError(f"{path / 'members.json'}: no member gives {_some(missing)}")


def _some(names: Any, shown: int = 10) -> str:
    """`a, b, c` or, past `shown` names, the first ones and how many more: an error stays one short line."""
    names = [str(n) for n in names] if isinstance(names, list) else [repr(names)]
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f", ... ({more:,} more)" if more > 0 else "")
