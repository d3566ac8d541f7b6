"""Data: label files, image files and the input pipeline that feeds the model.

labels (label files in, label sets), images (decoding and listing files, torch-free), pipeline
(uint8 decode, crops, datasets, loaders), cache (pre-resized image cache), image_source (what
to predict: a folder, a list, a CSV), download (the contest's images), synthetic (the demo's
outfits), relabel (corrected label files). Imports core only.
"""
