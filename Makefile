# The README's commands. Each sets up what it needs (virtualenvs, Airflow homes) by itself.
.PHONY: demo test lint clean

demo:  ## Run example DAG 1 through real Airflow against the bundled Blink emulator.
	scripts/demo.sh

test:  ## ruff, mypy and pytest on the newest Airflow 3 and on Airflow 2.11.
	scripts/test.sh

lint:  ## ruff and mypy only (needs .venv from `make test`).
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

clean:
	rm -rf .venv .venv-af2 .airflow-home .mypy_cache .ruff_cache
