# strom: every target creates or reuses .venv and installs the project into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Crash rounds: `make test` runs the default bounded loops; `make soak` runs thousands.
SOAK_ROUNDS ?= 3000

.PHONY: demo test soak bench bench-deep bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,examples]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart.py
	$(PY) examples/article_signups.py
	$(PY) examples/article_online_learning.py

test: $(STAMP)
	$(PY) -m pytest -q

soak: $(STAMP)
	STROM_CRASH_ROUNDS=$(SOAK_ROUNDS) $(PY) -m pytest -q -s tests/storage/test_crash.py
	STROM_COMPACTION_CRASH_ROUNDS=1000 $(PY) -m pytest -q -s tests/storage/test_compaction_crash.py

bench: $(STAMP)
	$(PY) -m benchmarks

bench-deep: $(STAMP)
	$(PY) benchmarks/storage.py
	$(PY) benchmarks/client.py
	$(PY) benchmarks/groups.py
	$(PY) benchmarks/compaction.py

bench-quick: $(STAMP)
	$(PY) benchmarks/storage.py --quick
	$(PY) benchmarks/client.py --quick
	$(PY) benchmarks/groups.py --quick
	$(PY) benchmarks/compaction.py --quick
	$(PY) -m benchmarks --smoke --no-install

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
