#!/bin/bash
# A Label Studio of its own for tests/test_label_studio.py's real-server test: a venv with label-studio and
# label-studio-sdk (kept out of the project's venv: Django and its pins), and a migrated SQLite database
# (VENV/template-data) that each test copies, so that a server starts in seconds instead of minutes.
#   .ci/label_studio_venv.sh [VENV]     # default /tmp/ls-venv; the test reads FASHIONSTYLE_LABEL_STUDIO_VENV
set -euo pipefail
VENV="${1:-/tmp/ls-venv}"
if [ ! -x "$VENV/bin/label-studio" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q label-studio==1.23.2 label-studio-sdk==2.1.2  # the versions the test was written against
fi
if [ ! -f "$VENV/template-data/.migrated" ]; then
  rm -rf "$VENV/template-data"
  mkdir -p "$VENV/template-data"
  # label-studio's own manage.py, on the data folder the server will be given: creates every table
  LABEL_STUDIO_BASE_DATA_DIR="$VENV/template-data" DJANGO_SETTINGS_MODULE=core.settings.label_studio \
    "$VENV/bin/python" "$("$VENV/bin/python" -c 'import label_studio, os; print(os.path.dirname(label_studio.__file__))')/manage.py" \
    migrate --noinput >"$VENV/template-data.log" 2>&1 || { tail -20 "$VENV/template-data.log"; exit 1; }
  touch "$VENV/template-data/.migrated"
fi
echo "label-studio $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))') in $VENV"
