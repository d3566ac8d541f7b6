# fashionstyle: `make demo` and `make test` set everything up on a fresh machine; `make test-fast` for quick checks.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# every package at one version, `make lock` rewrites it (docs/development.md)
LOCK := locks/dev.txt
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test test-fast bench lock clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) pip setuptools wheel
	$(PY) -m pip install -q -r requirements-dev.txt -c $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) .ci/check_locked.py $(LOCK)
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/fashionstyle demo

test: install  # everything (CI's command)
	$(PY) -m pytest

test-fast: install  # the developer loop: leaves out the tests marked slow (training, serving, browser, benchmarks)
	$(PY) -m pytest -m "not slow"

bench: install
	$(PY) bench/threshold_speed.py
	$(PY) bench/cpu_infer.py
	$(PY) bench/serve_load.py --requests 500 --concurrency 8

lock:  # re-resolve every environment's requirements at today's releases into locks/*.txt
	python3 .ci/lock.py

clean:
	rm -rf demo_run .pytest_cache
