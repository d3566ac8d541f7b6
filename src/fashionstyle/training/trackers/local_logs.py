"""The trackers that write under RUN/logs, the default pair: csv (RUN/logs/csv/metrics.csv) and
tensorboard (RUN/logs/tensorboard; `tensorboard --logdir RUN/logs`)."""
from __future__ import annotations

from typing import Any

from fashionstyle.core.config import TRACKERS
from fashionstyle.core.run import RunDir
from fashionstyle.training.trackers.base import Tracker


@TRACKERS.implements("csv")
class CsvLogs(Tracker):
    def logger(self, run: RunDir, name: str, uri: str) -> Any:
        import lightning as L

        return L.pytorch.loggers.CSVLogger(run.path, name="logs", version="csv")


@TRACKERS.implements("tensorboard")
class TensorBoardLogs(Tracker):
    def logger(self, run: RunDir, name: str, uri: str) -> Any:
        import lightning as L

        return L.pytorch.loggers.TensorBoardLogger(run.path, name="logs", version="tensorboard")
