# agentfarm: `make run` starts the whole farm, `make test` runs the whole suite.
# Both bootstrap .venv on first use (Python >= 3.11 and the OS are all they need).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint format bench-pickup bench-purge bench-llm bench-turns bench-overhead \
	bench-relay bench-langgraph bench clean os-packages

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "agentfarm needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# bubblewrap sandboxes tool processes of templates with `sandbox` on. Installed when missing
# and we may (root with apt); without it those workspaces' tools fail with a clear error and
# the sandbox test is skipped with bubblewrap's reason. promtool (Debian package prometheus)
# checks deploy/prometheus's scrape config and alert rules in the suite.
os-packages:
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
	      || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1)) \
	  || echo "note: bubblewrap (bwrap) is not installed; sandboxed templates cannot run tools"; }
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
	      || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1)) \
	  || echo "note: promtool (Debian package prometheus) is not installed; tests/integration/test_deploy_prometheus.py needs it"; }

run: $(STAMP) os-packages  ## the whole farm on embedded defaults, API on :3000
	$(VENV)/bin/agentfarm dev

test: $(STAMP) os-packages  ## the whole suite (real Postgres, Redis and Dramatiq workers)
	$(VENV)/bin/pytest

lint: $(STAMP)  ## ruff (style, dead noqa), import-linter (layering), mypy (types)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench-pickup: $(STAMP)  ## idle-worker pickup latency, stock vs wakeable broker
	$(PY) bench/pickup.py

bench-purge: $(STAMP)  ## retention purge of 1M messages (embedded Postgres unless AGENTFARM_DATABASE_URL)
	$(PY) bench/purge.py

bench-llm: $(STAMP)  ## CPU per streamed token: worker model path vs a raw httpx stream
	$(PY) bench/llm_cpu.py

# These need a running farm (`make run` in another terminal).
bench-turns: $(STAMP)  ## single-step turns/s vs raw Dramatiq no-op msgs/s; worker RSS
	$(PY) bench/turns.py

bench-overhead: $(STAMP)  ## POST -> first message_part at a client, minus model TTFT
	$(PY) bench/overhead.py

bench-relay: $(STAMP)  ## one API process relaying N concurrent SSE streams
	$(PY) bench/relay.py

# LangGraph gets its own venv: its dependencies never enter the project's.
LG_STAMP := .venv-langgraph/.installed-stamp
$(LG_STAMP): bench/langgraph-requirements.txt
	$(PYTHON) -m venv .venv-langgraph
	.venv-langgraph/bin/pip install --quiet -r bench/langgraph-requirements.txt
	@touch $(LG_STAMP)

bench-langgraph: $(STAMP) $(LG_STAMP)  ## idle pickup and turns/s vs a LangGraph dev server
	$(PY) bench/langgraph_compare.py

bench: bench-pickup bench-purge bench-llm

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
