#!/bin/bash
# A Label Studio of its own for tests/test_label_studio.py's real-server test: a venv with label-studio and
# label-studio-sdk at the versions of locks/label-studio.txt (kept out of the project's venv: Django and its
# pins), and a migrated SQLite database (VENV/template-data) that each test copies, so that a server starts in
# seconds instead of minutes.
#   .ci/label_studio_venv.sh [VENV]   # default: a folder keyed by the lock's hash; the last line printed is
#                                     # the venv's path (the test reads FASHIONSTYLE_LABEL_STUDIO_VENV)
# A venv is reused only when it was finished (VENV/.complete) from the same lock and this same script;
# anything else in that folder is removed and built anew.
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK=locks/label-studio.txt
KEY="$(cat "$LOCK" locks/label-studio.in "$0" | sha256sum | cut -c1-16)"
VENV="${1:-${TMPDIR:-/tmp}/fashionstyle-ci/label-studio-$KEY}"
if [ "$(cat "$VENV/.complete" 2>/dev/null)" != "$KEY" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -c "$LOCK" pip setuptools wheel >&2
  "$VENV/bin/python" -m pip install -q -r locks/label-studio.in -c "$LOCK" >&2
  "$VENV/bin/python" .ci/check_locked.py "$LOCK" >&2
  mkdir -p "$VENV/template-data"
  # label-studio's own manage.py, on the data folder the server will be given: creates every table
  LABEL_STUDIO_BASE_DATA_DIR="$VENV/template-data" DJANGO_SETTINGS_MODULE=core.settings.label_studio \
    "$VENV/bin/python" "$("$VENV/bin/python" -c 'import label_studio, os; print(os.path.dirname(label_studio.__file__))')/manage.py" \
    migrate --noinput >"$VENV/template-data.log" 2>&1 || { tail -20 "$VENV/template-data.log" >&2; exit 1; }
  echo "$KEY" >"$VENV/.complete"
fi
echo "label-studio $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))') in:" >&2
echo "$VENV"
