"""Data: label files, image files and the input pipeline that feeds the model.

labels (reading label files: label_rows streams their rows, label_formats parses the JD / CSV /
tags layouts, label_names the label sets, label_table the in-memory table and its splits,
label_stats counts and loss weights, streamed), images (decoding and listing files, torch-free),
the uint8 input pipeline (decode: files -> uint8 tensors; transforms: views, crops, DeviceInput;
batches: collate and pinning; dataset: ImageDataset, EpochShuffle; splits: bad images, train/val;
device_decode: nvJPEG and DeviceCrops), cache (pre-resized image cache), image_source
(what to predict: a folder, a list, a CSV), download (the contest's images: url_list, http_get,
image_bytes), synthetic (the demo's outfits: synthetic_outfit draws them with synthetic_cues),
relabel (corrected label files). Imports core only.
"""
