"""What every tracker does, and the loops that run them without naming one.

    check_trackers(config.logger, config.mlflow_uri)   # before the run folder is made: one line per problem
    loggers = make_loggers(config.logger, run)           # Lightning loggers, one per tracker asked for
    log_results(loggers, run, summary)                   # the final scores, then each tracker's files
    refresh_trackers(run, ids, metrics, figures)         # after evaluate or tune (analysis/tracking.py)

A tracker is a `Tracker` registered under its `--logger` name (core.config.TRACKERS names its module:
adding one is that module and its Choice line). RUN/logs/trackers.json keeps the ids of the tracker runs
a run logs to, so that --resume, `evaluate` and `tune` reach the same ones.
"""
from __future__ import annotations

import importlib.util
import sys
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Any, Sequence

from fashionstyle.core import atomic
from fashionstyle.core.config import TRACKERS, TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.core.summary import RunSummary

DEFAULT_TRACKERS = tuple(TrainConfig().logger)  # csv, tensorboard
TRACKER_IDS = "logs/trackers.json"  # the tracker runs' ids (and MLflow's store): --resume continues them
LEFT_OUT = ("checkpoints", "logs")  # run sub-folders not sent as the run's artefact (resume state, logs)
TIMEOUT_S = 5.0  # a tracker server that does not answer within this is named as unreachable
_MADE_BY: "weakref.WeakKeyDictionary[Any, Tracker]" = weakref.WeakKeyDictionary()  # logger -> its tracker


class Tracker:
    """One `--logger` choice. `module`: the package it needs, checked before a run starts (None: its logger
    says so when made); `rank_zero_only`: its store is not for several writers."""

    module: str | None = None
    rank_zero_only = False

    def check(self, uri: str) -> None:
        """Refuse, in one line, a store or server this tracker cannot use (before the run folder is made)."""

    def logger(self, run: RunDir, name: str, uri: str) -> Any:
        """The Lightning logger that gets the settings and every epoch's metrics."""
        raise NotImplementedError

    def finish(self, logger: Any, run: RunDir, final: dict[str, float]) -> None:
        """After the final scores are logged: the run's files, model and card, where the tracker keeps them."""

    def refresh(self, run: RunDir, ids: dict[str, str], metrics: dict[str, float], figures: list[Path]) -> bool:
        """After `evaluate` or `tune`: new scores and the report's figures to the run's tracker run (`ids`);
        whether it had one to reach."""
        return False


def tracker(name: str) -> Tracker:
    """The registered tracker called `name` (one line naming the valid ones otherwise)."""
    return TRACKERS.implementation(name)()


def check_trackers(names: Sequence[str], uri: str = "") -> None:
    """Refuse, in one line each, a tracker asked for whose package is missing or whose store is unusable."""
    for name in dict.fromkeys(names):
        chosen = tracker(name)
        if chosen.module and not installed(chosen.module):
            package = TRACKERS[name].value  # what `pip install` needs for it
            raise FashionStyleError(f"--logger {name} needs {package}, which is not installed; pip install {package}")
        chosen.check(uri)


def make_loggers(names: Sequence[str], run: RunDir, mlflow_uri: str = "") -> list[Any]:
    """One Lightning logger per tracker name, in order. A tracker asked for whose package is missing, or
    whose store cannot be used, fails in one line; tensorboard left in the default list is skipped then."""
    from fashionstyle.core.ranks import is_secondary_process

    loggers = []
    for name in dict.fromkeys(names):  # each once
        chosen = tracker(name)
        if chosen.rank_zero_only and is_secondary_process():
            continue
        try:
            check_trackers([name], mlflow_uri)
            logger = chosen.logger(run, run.path.name, mlflow_uri)
        except ModuleNotFoundError:
            if tuple(names) == DEFAULT_TRACKERS and name != "csv":
                continue  # not asked for by name
            package = TRACKERS[name].value
            raise FashionStyleError(f"--logger {name} needs {package}, which is not installed; "
                                    f"pip install {package}") from None
        _MADE_BY[logger] = chosen
        loggers.append(logger)
    return loggers


def log_results(loggers: Sequence[Any], run: RunDir, summary: RunSummary) -> None:
    """The run's summary as final metrics, then each tracker's files, to every logger; then close them."""
    final = summary.metrics()
    best = run.manifest().get("best_epoch")
    if best:
        final["best_epoch"] = float(best)
    for logger in loggers:
        logger.log_metrics(final)
        if logger in _MADE_BY:
            _MADE_BY[logger].finish(logger, run, final)
        logger.finalize("success")


def refresh_trackers(run: RunDir, ids: dict[str, str], metrics: dict[str, float], figures: list[Path]) -> list[str]:
    """`metrics` and `figures` to every tracker run `ids` (tracker_ids(run)) names; the names of those reached."""
    return [name for name in TRACKERS if ids and tracker(name).refresh(run, ids, metrics, figures)]


def tracker_ids(run: RunDir) -> dict[str, str]:
    path = run / TRACKER_IDS
    return atomic.read_json(path) if path.is_file() else {}


def save_tracker_ids(run: RunDir, **ids: str) -> None:
    atomic.write_json(run / TRACKER_IDS, {**tracker_ids(run), **ids})


def run_files(run: RunDir) -> list[Path]:
    """The files of the run a tracker keeps: all but checkpoints, logs and each epoch's validation
    probabilities (a per-label run's epoch models stay: its members)."""
    return sorted(p for p in run.path.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.relative_to(run.path).parts[0] not in LEFT_OUT
                  and not (p.parent.name == "epochs" and p.suffix == ".npy"))


def point_lines(run: RunDir) -> dict[str, str]:
    """Each operating point of the run in one line (name: objective, rules, labels out of reach)."""
    contents = run.contents()
    return {name: contents.point(name).describe(contents.label_names) for name in contents.point_names()}


def installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a module without a spec (None in sys.modules: hidden)
        return sys.modules.get(package) is not None


def check_reachable(url: str, what: str, hint: str) -> None:
    """Any HTTP answer counts (a 404 too): the server is there. No answer within TIMEOUT_S is one line."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise FashionStyleError(f"{what} does not answer ({reason}); {hint}") from None
