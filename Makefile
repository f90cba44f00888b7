# The two commands in README.md: `make run` (install + whole workflow) and `make test` (install + test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2

.PHONY: install run test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[workflow,test]'
	touch $@

run: install
	. $(VENV)/bin/activate && snakemake --cores $(CORES)

test: install
	. $(VENV)/bin/activate && python -m pytest -q -n $(CORES) --dist loadgroup

clean:
	rm -rf results runs tokens logs .snakemake report.html
