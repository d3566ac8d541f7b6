"""Experiment trackers: where a training run's settings, per-epoch metrics, final scores and model go.

    fashionstyle train ... --logger csv --logger tensorboard --logger mlflow --logger wandb

base.py runs them (check, make the loggers, log the results, refresh after evaluate or tune) without naming
one; each tracker is one module registering a `Tracker`: local_logs.py (csv and tensorboard under RUN/logs,
the default), mlflow_tracker.py and wandb_tracker.py. Each gets
the resolved config and every epoch's losses and validation F-beta at that epoch's exact thresholds
(`val_fbeta_epoch_exact`, overall and per label); at the end the run's summary as final metrics
(`val_macro_f2`, `val_f2/<label>`, `threshold/<label>`, and `test_...` once evaluated).
"""
