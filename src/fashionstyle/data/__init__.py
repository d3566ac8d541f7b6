"""Data: label files, image files and the input pipeline that feeds the model. One folder per concept:

labels/     reading, checking, merging and counting label files (every format)
images/     image files: decoding, listing, sources to predict, the pre-resized cache
download/   the contest's images from the web
synthetic/  the built-in demo's outfits
and the uint8 input pipeline beside them: dataset.py (ImageDataset, EpochShuffle), transforms.py (views,
crops, DeviceInput), batches.py (collate and pinning), splits.py (bad images, train/val).
Imports core only.
"""
