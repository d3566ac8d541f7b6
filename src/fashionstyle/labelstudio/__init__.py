"""Label Studio, both ways: tasks with pre-annotations out (tasks.py), its exports back in as label files
(data/label_studio.py, read by `read_labels`); the service as its ML backend is serving/label_studio.py.

One project layout throughout: an `Image` named "image" and a multiple `Choices` named "style" with
one `Choice` per label of the run; each task's data carries the run's label set (`fashionstyle_labels`),
so that an export read back knows its labels, and another project's export is refused by name.
"""
from __future__ import annotations

from fashionstyle.data.label_studio import (  # noqa: F401  (the layout's names, in one place)
    FROM_NAME, ID_KEY, LABEL_SEPARATOR, LABELS_KEY, LOCAL_FILES_URL, TO_NAME,
)
