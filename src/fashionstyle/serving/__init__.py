"""The HTTP service: app (FastAPI JSON API and the one-page UI in static/) and label_info
(label descriptions). Imports every stage below it.
"""
