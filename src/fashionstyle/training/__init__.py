"""Making runs: train (the one entry point, `train.train`), loop (the run set-up of one multi-label
model), module (its Lightning module), trainer_run and progress (running the Trainer), single_label
(one model per label), labelwise (a best epoch per label), cv (K folds), distill, fusion and selection
(runs combined from other runs), trackers (experiment loggers).
Imports core, data, model and inference.
"""
