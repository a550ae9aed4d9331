# The two commands a newcomer needs. Both install what they use on first run.
.PHONY: example test lint

example:  ## validate and render the bundled example repository (no cluster needed; runtime deps only)
	@./scripts/bootstrap.sh runtime
	.venv/bin/tms check --now 2026-11-22T00:00:00Z
	@# One folder per stack (out/<stack>/): a second Pulumi.<stack>.yaml must not break the example.
	@for f in Pulumi.*.yaml; do s=$${f#Pulumi.}; s=$${s%.yaml}; \
	  echo ".venv/bin/tms render --stack $$s --out out/$$s/ --now 2026-11-22T00:00:00Z"; \
	  .venv/bin/tms render --stack "$$s" --out "out/$$s/" --now 2026-11-22T00:00:00Z || exit $$?; done
	@echo
	@echo "tms is installed in .venv/bin/tms. To run it as plain 'tms':"
	@echo "  export PATH=\"$(CURDIR)/.venv/bin:\$$PATH\"    (this shell; add it to your shell profile to keep it)"

test:  ## the whole test suite, with the real servers it needs
	@./scripts/bootstrap.sh
	@./scripts/install-test-deps.sh
	.venv/bin/python -m pytest

lint:
	@./scripts/bootstrap.sh
	.venv/bin/ruff check tms_stack tests bench
	.venv/bin/mypy tms_stack
