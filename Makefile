# confab — common tasks. `make help` lists them.
CARGO ?= cargo

.PHONY: help run test test-pg lint fmt doc bench bench-pg

help:
	@echo "make run      start confab on the embedded default (SQLite, built-in model)"
	@echo "make test     run every test (PostgreSQL suite too when TEST_DATABASE_URL is set)"
	@echo "make test-pg  run every test against a throwaway local PostgreSQL as well"
	@echo "make lint     rustfmt check + clippy -D warnings + rustdoc"
	@echo "make bench    storage benchmarks (SQLite; PostgreSQL too when TEST_DATABASE_URL is set)"

run:
	@echo "confab: the servers (chat-service, api-gateway) are not built yet: they arrive"
	@echo "with the chat-service and api-gateway issues. What exists today is the library"
	@echo "layer (models, store, history); try 'make test' or 'make bench'."
	@exit 1

test:
	CARGO=$(CARGO) scripts/test.sh

test-pg:
	scripts/with-postgres.sh $(MAKE) test

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench -p confab-history --bench history

bench-pg:
	scripts/with-postgres.sh $(MAKE) bench
