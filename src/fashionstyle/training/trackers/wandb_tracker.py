"""The W&B tracker: offline (files under RUN/logs/wandb, `wandb sync` uploads them) unless WANDB_API_KEY is
set. The run's settings and epochs as they come; at the end its card and settings as files, the final
scores as the W&B run's summary and the run folder as a model artefact; after `evaluate` or `tune`, the
new scores, the operating points and the report's figures in the same W&B run (resumed by id)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from fashionstyle.core.config import TRACKERS
from fashionstyle.core.run import RunDir
from fashionstyle.training.trackers.base import Tracker, check_reachable, point_lines, run_files, save_tracker_ids, \
    tracker_ids

INIT_TIMEOUT_S = 30.0


def wandb_online() -> bool:
    """W&B logs online with an API key and no offline mode asked for; offline (RUN/logs/wandb) otherwise."""
    return bool(os.environ.get("WANDB_API_KEY")) and os.environ.get("WANDB_MODE", "") not in (
        "offline", "dryrun", "disabled")


@TRACKERS.implements("wandb")
class WandbTracker(Tracker):
    module = "wandb"
    rank_zero_only = True

    def check(self, uri: str) -> None:
        if wandb_online():
            base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
            check_reachable(base, f"--logger wandb: the W&B server {base}",
                            "set WANDB_MODE=offline to log offline (`wandb sync` uploads later)")

    def logger(self, run: RunDir, name: str, uri: str) -> Any:
        import lightning as L
        import wandb

        (run / "logs").mkdir(parents=True, exist_ok=True)
        run_id = tracker_ids(run).get("wandb") or uuid.uuid4().hex[:8]  # a resume continues the same W&B run
        save_tracker_ids(run, wandb=run_id)
        return L.pytorch.loggers.WandbLogger(project="fashionstyle", name=name, save_dir=str(run / "logs"),
                                             offline=not wandb_online(), id=run_id, resume="allow",
                                             settings=wandb.Settings(init_timeout=INIT_TIMEOUT_S, quiet=True))

    def finish(self, logger: Any, run: RunDir, final: dict[str, float]) -> None:
        """The card and settings as files, the final scores as the run's summary, the run folder as a model
        artefact."""
        import wandb

        experiment = logger.experiment
        for name in ("MODEL_CARD.md", "thresholds.json", "config.yaml"):
            if (run / name).is_file():
                experiment.save(str(run / name), base_path=str(run.path), policy="now")
        experiment.summary.update(final)
        artefact = wandb.Artifact(f"model-{experiment.id}", type="model", metadata={"run": str(run.path)})
        for path in run_files(run):
            artefact.add_file(str(path), name=str(path.relative_to(run.path)))
        experiment.log_artifact(artefact, aliases=["latest"])

    def refresh(self, run: RunDir, ids: dict[str, str], metrics: dict[str, float], figures: list[Path]) -> bool:
        if "wandb" not in ids:
            return False
        import wandb

        with wandb.init(project="fashionstyle", id=ids["wandb"], resume="allow", dir=str(run / "logs"),
                        mode="online" if wandb_online() else "offline", name=run.path.name,
                        settings=wandb.Settings(quiet=True)) as experiment:
            experiment.summary.update({**metrics, "operating_points": point_lines(run)})
            experiment.log({f"figures/{path.stem}": wandb.Image(str(path)) for path in figures})
        return True
