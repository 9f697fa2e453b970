# Two commands set everything up: `make demo` and `make test`.
# Each (re)creates .venv when pyproject.toml changes, then installs the project into it.
PYTHON ?= python3
VENV   ?= .venv
OUT    ?= demo_out
BIN    := $(VENV)/bin
export NO_ALBUMENTATIONS_UPDATE := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install demo test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/wit demo --out $(OUT)

# pytest exits 5 when it collects nothing; that is a failure of ours, not a pass.
test: install
	$(BIN)/python -m pytest -q -rfEs --durations=15

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
