"""Label files: every format read (read.py: read_labels, label_rows; formats.py: JD, CSV, tags, path
lists; label_studio.py: Label Studio exports), their rows streamed and checked (rows.py), label sets
(names.py), the in-memory table and its splits (table.py), counts and loss weights (stats.py), several
files merged (merge.py) and corrected files written (relabel.py)."""
