# The two commands a newcomer needs. Both install what they use on first run.
.PHONY: example test lint

example:  ## validate and render the bundled example repository (no cluster needed)
	@./scripts/bootstrap.sh
	.venv/bin/tms check --now 2026-11-22T00:00:00Z
	.venv/bin/tms render -o out/ --now 2026-11-22T00:00:00Z

test:  ## the whole test suite, with the real servers it needs
	@./scripts/bootstrap.sh
	@./scripts/install-test-deps.sh
	.venv/bin/python -m pytest

lint:
	@./scripts/bootstrap.sh
	.venv/bin/ruff check tms_stack tests bench
	.venv/bin/mypy tms_stack
