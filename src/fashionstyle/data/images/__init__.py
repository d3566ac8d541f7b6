"""Image files: decoding and listing them torch-free (files.py), what to predict (source.py: a folder, a
list, a CSV), uint8 decoding for the input pipeline (decode.py; device_decode.py on a GPU) and the
pre-resized image cache (cache.py)."""

BOMB_PIXELS = 89_478_485  # Pillow's decompression-bomb guard, made explicit (files.py sets it): larger images are refused
