# The README's commands. Each sets up what it needs (virtualenvs, Airflow homes) by itself.
.PHONY: demo test test-all docs package e2e e2e-scale bench lint clean

demo:  ## The quickstart page, run as written: example DAG 1 through real Airflow against the bundled Blink emulator.
	scripts/demo.sh

test:  ## ruff, mypy and pytest on the newest releases and on Airflow 2.11 (scripts/lines.txt).
	scripts/test.sh

test-all:  ## The same on every line of scripts/lines.txt: each Airflow line as its users have it, and the floors.
	scripts/test.sh --all

docs:  ## The documentation site (mkdocs, strict: broken links, pages or includes fail) into site/.
	scripts/docs.sh

package:  ## Build the sdist and wheel into dist/, twine check them, check what the wheel holds.
	scripts/package.sh

e2e:  ## A real Airflow 3 deployment (PostgreSQL, scheduler, triggerer ...) and a browser, vs the emulator.
	scripts/e2e.sh

e2e-scale:  ## Scale-out: CeleryExecutor workers and two triggerers, 500 deferred tasks, one of each killed mid-wait; 50 tasks started in the triggerer against 50 deferrable.
	scripts/e2e-scale.sh

bench:  ## Performance: 1,000 and 10,000 triggers (batched, batching off; log_progress at 1,000) vs bare aiohttp GETs over TLS, 10 connections, DAG parse, sync hook, pagination, hostile list answers.
	scripts/bench.sh

lint:  ## ruff and mypy only (needs .venv from `make test`).
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

clean:
	rm -rf dist site .venv .venv-docs .venv-af2 .venv-af30 .venv-af31 .venv-af32 .venv-af33 .venv-floors .venv-e2e .venv-e2e-af2 .venv-e2e-af30 .airflow-home .mypy_cache .ruff_cache
