"""Label Studio, both ways: tasks with pre-annotations out (tasks.py), its exports back in as label files
(data/labels/label_studio.py, read by `read_labels`), a project read through its HTTP API (client.py), and one
labelling round (round.py: merge, train from the previous weights, compare); the service as its ML backend
is serving/label_studio.py.

One project layout throughout: an `Image` named "image" and a multiple `Choices` named "style" with
one `Choice` per label of the run; each task's data carries the run's label set (`fashionstyle_labels`),
so that an export read back knows its labels, and another project's export is refused by name, and its
place in `suggest`'s order (`fashionstyle_priority`, 1 first: a column to sort by). Each pre-annotation's
score is the model's certainty in it (tasks.pre_annotation_scores), in stored tasks and from the ML
backend alike.
"""
from __future__ import annotations

from fashionstyle.data.labels.label_studio import (  # noqa: F401  (the layout's names, in one place)
    FROM_NAME, ID_KEY, LABEL_SEPARATOR, LABELS_KEY, LOCAL_FILES_URL, TO_NAME,
)

PRIORITY_KEY = "fashionstyle_priority"  # a task's place in suggest's order, 1 first
