"""The built-in demo's synthetic data: labels, splits and the dataset written (dataset.py), each outfit
drawn (outfit.py) with a visible cue per style (cues.py)."""
