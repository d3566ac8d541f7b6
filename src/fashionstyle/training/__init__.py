"""Making runs: fit (the one entry point), loop (Lightning training of one multi-label model),
single_label (one model per label), labelwise (a best epoch per label), cv (K folds),
fusion and selection (runs combined from other runs), trackers (experiment loggers).
Imports core, data, model and inference.
"""
