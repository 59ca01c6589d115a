# The two set-up-to-result commands: `make demo` and `make test`.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-branch clean system-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian tools some tests and benchmarks need (btrfs and xfs loop images, .deb builds).
# Installed only when running as root and only if missing; without them those tests skip.
SYSTEM_TOOLS := mkfs.btrfs:btrfs-progs mkfs.xfs:xfsprogs dpkg-deb:dpkg
system-tools:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for pair in $(SYSTEM_TOOLS); do \
	    command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    apt-get install -y -q $$missing >/dev/null || \
	      { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; } || \
	      echo "could not install$$missing: the tests that need them will skip"; \
	  fi; \
	fi

demo: $(STAMP)
	$(BIN)/python -m hub.demo_fleet

lint: $(STAMP)
	$(BIN)/ruff check agent hub tests
	$(BIN)/mypy

test: $(STAMP) system-tools lint
	$(BIN)/pytest -q

bench: $(STAMP) system-tools
	$(BIN)/python -m tests.bench.run_all

# Branch offices in network namespaces (root; several minutes): tests/bench/branch_office/
bench-branch: $(STAMP)
	$(BIN)/python -m tests.bench.branch_office

clean:
	rm -rf $(VENV) build *.egg-info
