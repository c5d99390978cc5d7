# chainwatch: `make help` lists the targets.
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help run build test check fmt clippy rules-check rules-test dashboards-check compose-check bench soak deps up down clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

run: ## Run on the embedded broker fed by the simulator (no Kafka needed)
	$(CARGO) run --locked -- run

build: ## Build the release binary
	$(CARGO) build --locked --release

deps: ## Install what tests need (tansu broker, system packages)
	scripts/install-deps.sh

# A hung test fails the run after TEST_TIMEOUT seconds (the build is not counted) instead of
# holding CI until its own limit; the suite takes about 4 minutes.
TEST_TIMEOUT ?= 1500

test: deps ## Run every test: unit tests and integration tests against a real broker
	$(CARGO) test --locked --all-targets --no-run
	timeout --kill-after=30 $(TEST_TIMEOUT) $(CARGO) test --locked --all-targets

check: fmt clippy rules-check rules-test dashboards-check compose-check ## Formatting, lints, rule files, dashboards, Prometheus/Alertmanager files

fmt: ## Check formatting
	$(CARGO) fmt --all -- --check

clippy: ## Lint, warnings are errors
	$(CARGO) clippy --locked --all-targets -- -D warnings

# The binary the rule checks run: `cargo run` by default. CI passes the one `cargo test`
# builds (target/debug/chainwatch): the test build unifies dev-dependency features, so a plain
# build of the same sources is a second, separate build of most dependencies (6 minutes).
CHAINWATCH ?= $(CARGO) run --locked --quiet --

rules-check: ## Parse and plan every rule and indicator in rules/
	$(CHAINWATCH) rules check rules

rules-test: ## Run the rule unit tests in rules/tests (promtool-style)
	$(CHAINWATCH) rules test rules/tests/*.test.yaml

dashboards-check: ## Dashboards against Grafana's JSON model; promtool/amtool on docker/ when installed
	python3 dashboards/check_dashboards.py
	@if command -v promtool >/dev/null; then \
	  promtool check config docker/prometheus/prometheus.yml && \
	  promtool check rules docker/prometheus/rules/chainwatch.yml && \
	  promtool test rules docker/prometheus/tests/chainwatch.test.yml; \
	else echo "promtool not installed: skipped (apt-get install prometheus)"; fi
	@if command -v amtool >/dev/null; then amtool check-config docker/alertmanager/alertmanager.yml; \
	else echo "amtool not installed: skipped (apt-get install prometheus-alertmanager)"; fi

compose-check: ## Validate docker/compose.yaml (Compose v2 or docker-compose v1)
	@if docker compose version >/dev/null 2>&1; then docker compose -f docker/compose.yaml config -q; \
	elif command -v docker-compose >/dev/null; then docker-compose -f docker/compose.yaml config -q; \
	else echo "docker compose not installed: skipped"; fi

bench: deps ## Benchmarks (release build); figures go to docs/benchmarks.md
	$(CARGO) run --locked --release --example bench

soak: deps ## 10-minute soak at a steady rate: resident memory and state sizes (docs/benchmarks.md)
	$(CARGO) run --locked --release --example bench -- --only=soak

up: ## Full stack in docker (Kafka, chainwatch, simulator, Prometheus, Alertmanager, Grafana)
	docker compose -p chainwatch -f docker/compose.yaml up -d --build

down: ## Stop the docker stack
	docker compose -p chainwatch -f docker/compose.yaml down

clean:
	$(CARGO) clean
