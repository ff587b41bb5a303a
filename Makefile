# provisiond: `make demo` and `make test` do all set-up on a fresh machine (python3, make,
# apt-get) and then run. Everything lands in .venv; system packages only when root and missing.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: demo test lint typecheck unit venv clean bench

$(STAMP): pyproject.toml .ci/bootstrap.sh
	@bash .ci/bootstrap.sh
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/provisiond lab demo --data-dir .demo

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

# PostgreSQL: use PROVISIOND_TEST_PG_URL if set, else install/start Debian's server (root).
test: venv lint typecheck
	@bash .ci/syspkgs.sh
	@pg_url="$${PROVISIOND_TEST_PG_URL:-$$(bash .ci/postgres.sh)}"; \
	  if [ -z "$$pg_url" ]; then echo "make test: no PostgreSQL; its tests will skip (fail under CI)"; fi; \
	  PROVISIOND_TEST_PG_URL="$$pg_url" $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest -q -m "not postgres" $(PYTEST_ARGS)

bench: venv
	@bash .ci/syspkgs.sh
	@pg_url="$${PROVISIOND_TEST_PG_URL:-$$(bash .ci/postgres.sh)}"; \
	  PROVISIOND_TEST_PG_URL="$$pg_url" $(BIN)/python bench/enroll_list.py
	$(BIN)/python bench/power_sweep.py
	$(BIN)/python bench/dhcp_storm.py
	$(BIN)/python bench/tftp_storm.py

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache
