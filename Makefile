# The two set-up-to-result commands: `make demo` and `make test`.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-branch clean system-tools js-tools deb

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian tools some tests and benchmarks need (btrfs and xfs loop images, .deb builds,
# the standard clients of tests/e2e/test_standard_clients.py: qBittorrent, aria2,
# Transmission 3's transmission-show, node and npm; poppler's pdftoppm and pdftotext
# for the compliance PDF test).
# Installed only when running as root and only if missing; without them those tests skip.
SYSTEM_TOOLS := mkfs.btrfs:btrfs-progs mkfs.xfs:xfsprogs dpkg-deb:dpkg \
	qbittorrent-nox:qbittorrent-nox aria2c:aria2 transmission-show:transmission-cli \
	node:nodejs npm:npm pdftoppm:poppler-utils chromium:chromium chromedriver:chromium-driver
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

# tuf-js, the standard TUF client (not python-tuf) tests/e2e/test_standard_clients.py runs,
# into build/tuf-js; only if npm exists and it is missing. Without it that test skips.
js-tools: system-tools
	@if command -v npm >/dev/null && [ ! -d build/tuf-js/node_modules/tuf-js ]; then \
	  echo "installing tuf-js into build/tuf-js"; \
	  npm install --silent --no-audit --no-fund --prefix build/tuf-js tuf-js@6 || \
	    echo "could not install tuf-js: the standard TUF client test will skip"; \
	fi

demo: $(STAMP)
	$(BIN)/python -m tests.demo_fleet $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check agent hub tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) system-tools js-tools lint
	$(BIN)/pytest -q

bench: $(STAMP) system-tools
	$(BIN)/python -m tests.bench.run_all

# Branch offices in network namespaces (root; several minutes): tests/bench/branch_office/
bench-branch: $(STAMP)
	$(BIN)/python -m tests.bench.branch_office

# The two Debian packages (build/deb/meisitong-{hub,agent}_VERSION_amd64.deb): each a
# private virtualenv under /opt/meisitong, units, sysusers.d, tmpfiles.d, /etc configs.
deb: $(STAMP) system-tools
	$(BIN)/python packaging/build_deb.py

clean:
	rm -rf $(VENV) build *.egg-info
