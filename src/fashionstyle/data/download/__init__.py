"""The contest's images from the web: the (id, url) lists (url_list.py), one bounded HTTP GET
(http_get.py), image bytes cut and checked (image_bytes.py), and the parallel, resumable download
(fetch.py)."""
