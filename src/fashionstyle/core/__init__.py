"""The ground floor: what every stage shares, torch-free.

errors (the one user-error type), atomic (atomic writes), overwrite (outputs never overwrite
inputs), choices (every list of valid choices), config (TrainConfig), metrics and thresholds
(F-beta and per-label thresholds), run (the run directory), history, model_card, ranks,
locks (file locks: one writer per run, output or cache folder).
Imports nothing else of the package.
"""
