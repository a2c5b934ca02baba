# Synod: `make demo` runs the main job, `make test` runs every test suite.
# Everything is installed into this checkout: .venv (Python), .cache (Kafka jars,
# broker state), .tools (helm and friends, later). Nothing is installed globally.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
KAFKA := $(PY) -m synod.dev.localkafka
KAFKA4_VERSION ?= 4.1.2

.PHONY: help prereqs venv lint lint-imports fmt schemas contract-tools test test-fast test-unit test-integration test-e2e test-chaos \
        test-kafka4 test-cluster test-secure test-cap kafka-up kafka-down kafka-clean kafka-fetch demo clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

prereqs: ## check Python 3.11+, Java 17+ and Maven
	@$(PYTHON) -c 'import sys; v=sys.version_info; sys.exit(0 if v >= (3, 11) else "Python 3.11+ is needed, found %d.%d" % v[:2])'
	@command -v java >/dev/null || { echo "Java 17+ is needed (apt-get install openjdk-17-jdk)"; exit 1; }
	@java -version 2>&1 | awk -F'"' '/version/ { split($$2, v, "."); if (v[1] < 17) { print "Java 17+ is needed, found " $$2; exit 1 } }'
	@command -v mvn >/dev/null || { echo "Maven is needed to fetch the Kafka jars (apt-get install maven)"; exit 1; }
	@echo "prerequisites ok: $$($(PYTHON) --version), java $$(java -version 2>&1 | awk -F'"' '/version/ {print $$2}'), $$(mvn -v 2>/dev/null | head -1)"

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory prereqs
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP) ## create .venv with the pinned dependencies

lint: venv contract-tools ## ruff, mypy --strict, import rules (layers, no cycles), schemas up to date
	$(VENV)/bin/ruff check libs tests bench services setup.py
	$(VENV)/bin/ruff format --check libs tests bench services setup.py
	$(VENV)/bin/mypy
	$(MAKE) --no-print-directory lint-imports
	$(PY) -m synod.wire.schemagen --check
	$(PY) -m synod.dev.chartdata --check
	$(PY) -m synod.transport.asyncapi --check
	$(PY) -m synod.roles.gateway.openapigen --check
	$(VENV)/bin/openapi-spec-validator schemas/openapi.json
	NODE_PATH=$(CURDIR)/$(ASYNCAPI_NODE)/node_modules node hack/asyncapi-validate.mjs schemas/asyncapi.json

# The contracts are [tool.importlinter] in pyproject.toml (docs/architecture.md).
lint-imports: venv ## the import rules only: layers, independent roles, pure cores, no cycles
	$(VENV)/bin/lint-imports --no-cache

fmt: venv ## format the code and fix what ruff can
	$(VENV)/bin/ruff check --fix libs tests bench services
	$(VENV)/bin/ruff format libs tests bench services

schemas: venv ## regenerate schemas/ from the wire models
	$(PY) -m synod.wire.schemagen
	$(PY) -m synod.dev.chartdata
	$(PY) -m synod.transport.asyncapi
	$(PY) -m synod.roles.gateway.openapigen

# The AsyncAPI project's own parser checks schemas/asyncapi.json (Avro payloads
# included); installed once into .tools (git-ignored), so lint needs npm once.
ASYNCAPI_PARSER_VERSION ?= 3.6.6
ASYNCAPI_AVRO_VERSION ?= 3.1.0
ASYNCAPI_NODE := .tools/npm-asyncapi
ASYNCAPI_STAMP := $(ASYNCAPI_NODE)/.installed-$(ASYNCAPI_PARSER_VERSION)-$(ASYNCAPI_AVRO_VERSION)

$(ASYNCAPI_STAMP):
	@command -v npm >/dev/null || { echo "npm is needed for the AsyncAPI parser (apt-get install npm)"; exit 1; }
	npm install --silent --no-audit --no-fund --save-exact --prefix $(ASYNCAPI_NODE) \
	  @asyncapi/parser@$(ASYNCAPI_PARSER_VERSION) @asyncapi/avro-schema-parser@$(ASYNCAPI_AVRO_VERSION)
	touch $@

contract-tools: $(ASYNCAPI_STAMP) ## the AsyncAPI parser (npm) into .tools, for make lint

kafka-fetch: venv ## fetch the Kafka broker jars from Maven Central
	$(KAFKA) fetch

BROKERS ?= 1
kafka-up: venv ## start the local Kafka broker (BROKERS=3: a 3-node KRaft cluster); prints SYNOD_BOOTSTRAP=
	@$(KAFKA) up --brokers $(BROKERS)

kafka-down: venv ## stop the local Kafka broker and cluster
	@$(KAFKA) down

kafka-clean: venv ## stop the local broker and delete its data
	@$(KAFKA) clean

test-fast: test-unit ## unit tests only (no broker)

test-unit: venv
	$(VENV)/bin/pytest tests/unit

test-integration: venv kafka-fetch ## integration tests on a real broker (own broker unless SYNOD_BOOTSTRAP)
	$(VENV)/bin/pytest tests/integration --ignore=tests/integration/cluster

# Three JVMs and a broker SIGKILLed: ~2 min on 2 cores, so not part of `make test`.
test-cluster: venv kafka-fetch ## 3-broker KRaft cluster: leader kill, rolling restart under the team
	$(VENV)/bin/pytest tests/integration/cluster -s

test-e2e: venv kafka-fetch ## every service as a process on a real broker
	$(VENV)/bin/pytest tests/e2e

test-chaos: venv kafka-fetch ## faults (kill -9, hostile models) on the real services; bounded in time
	$(VENV)/bin/pytest tests/chaos

# ~5 min: the planner cut, every service cut for 30 s, a gray coder (docs/cap.md).
test-cap: venv kafka-fetch $(CURDIR)/.tools/toxiproxy-server ## the long real-partition runs, not part of make test
	SYNOD_TEST_CAP=1 $(VENV)/bin/pytest tests/chaos/test_partitions.py tests/chaos/test_partitions_long.py tests/integration/test_netfaults.py -s

# ~4 min: synod chaos on one team, broker-restart included (it restarts the session's broker).
test-chaos-restart: venv kafka-fetch $(CURDIR)/.tools/toxiproxy-server ## synod chaos with broker-restart, not part of make test
	SYNOD_TEST_BROKER_RESTART=1 $(VENV)/bin/pytest tests/chaos/test_chaos_command.py -s

test: lint venv kafka-fetch tools ## lint, then every suite (chart checks included) on a real broker
	$(VENV)/bin/pytest tests --ignore=tests/k8s --ignore=tests/integration/cluster --ignore=tests/e2e/secure --ignore=tests/foreign

# Java (mvn) and Go read Synod's Avro: examples/avro-java, examples/avro-go, docs/wire.md.
# Cold (Maven Central, the Go proxy, the avro 1.12 venv) ~70 s; warm 6 s at load 10,
# up to ~90 s at load 25 (Maven's start). Not in `make test`; .ci/run runs it after.
foreign-readers: venv ## Apache Avro (Java) and hamba/avro (Go) decode every message type
	$(VENV)/bin/pytest tests/foreign -q

# Every benchmark with bounded sizes (bench/report.py, ~15 min on 2 loaded cores),
# then docs/benchmarks.md and docs/bench/*.png from its JSON (bench/render.py, in a
# venv of its own with matplotlib, so the project's deps stay without it).
BENCH_VENV := $(CURDIR)/.cache/bench-venv
MATPLOTLIB_VERSION ?= 3.11.2
$(BENCH_VENV)/.matplotlib-$(MATPLOTLIB_VERSION):
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet matplotlib==$(MATPLOTLIB_VERSION)
	touch $@

bench-report: venv kafka-fetch $(CURDIR)/.tools/toxiproxy-server $(BENCH_VENV)/.matplotlib-$(MATPLOTLIB_VERSION) ## run every benchmark, write docs/benchmarks.md + plots
	$(VENV)/bin/python bench/report.py
	$(MAKE) bench-render

bench-render: $(BENCH_VENV)/.matplotlib-$(MATPLOTLIB_VERSION) ## docs/benchmarks.md + plots from the last bench-report's JSON
	$(BENCH_VENV)/bin/python bench/render.py

bench-peers: venv kafka-fetch ## Synod (transport, services), aiokafka, faust, AutoGen side by side (~3-5 min)
	$(VENV)/bin/python bench/peers/run.py

test-secure: venv kafka-fetch ## a secured team (synod up --secure): forgeries refused, no secret leaks (~2.5 min)
	$(VENV)/bin/pytest tests/e2e/secure -s

# The CI sweep (1,000 seeds) is tests/unit/sim/test_sweep.py; this one is larger.
SIM_SEEDS ?= 20000
sim-sweep: venv ## the whole-system simulation over SIM_SEEDS seeds (default 20000), every fault on
	$(VENV)/bin/synod sim --seed 1000000 --seeds $(SIM_SEEDS) --tasks 3 --faults all --shrink

# Against the team `synod up` runs (start it first, in another terminal).
CHAOS_S ?= 600
chaos-soak: venv ## kills and pauses under load for CHAOS_S s (default 600) against `synod up`, then synod check
	$(VENV)/bin/synod chaos mixed --duration $(CHAOS_S) --seed 1 --rate 1

test-kafka4: venv ## the integration tests against Kafka $(KAFKA4_VERSION)
	SYNOD_KAFKA_VERSION=$(KAFKA4_VERSION) $(KAFKA) fetch
	SYNOD_KAFKA_VERSION=$(KAFKA4_VERSION) $(VENV)/bin/pytest tests/integration

demo: venv kafka-fetch ## run the demonstration end to end on a real local broker
	$(PY) -m synod.dev.demo

clean: ## remove the venv, caches and broker data
	-$(KAFKA) clean 2>/dev/null
	chmod -R u+w .tools 2>/dev/null || true  # the Go module cache is read-only
	rm -rf $(VENV) .cache .tools .pytest_cache .mypy_cache .ruff_cache .hypothesis

# --- Kubernetes: helm into .tools, chart checks ------------------------------
HELM_VERSION ?= v3.19.0
TOOLS := $(CURDIR)/.tools

.PHONY: tools chart-test k8s-e2e jaeger sim-sweep chaos-soak test-chaos-restart foreign-readers bench-report bench-render bench-peers

# Without the version ldflag a go-installed helm reports no version; charts that
# require a Kubernetes or helm version then misjudge it.
$(TOOLS)/helm:
	@command -v go >/dev/null || { echo "Go is needed to build helm (apt-get install golang)"; exit 1; }
	GOBIN=$(TOOLS) go install \
	  -ldflags "-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION)" \
	  helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# Toxiproxy cuts and slows real TCP paths between a zone's services and the
# broker (synod.dev.netfaults; docs/cap.md). Its command is cmd/server: renamed.
TOXIPROXY_VERSION ?= v2.5.0
$(TOOLS)/toxiproxy-server:
	@command -v go >/dev/null || { echo "Go is needed to build toxiproxy (apt-get install golang)"; exit 1; }
	GOBIN=$(TOOLS)/toxiproxy-build go install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION)
	mv $(TOOLS)/toxiproxy-build/server $@
	rmdir $(TOOLS)/toxiproxy-build

# The CRD schemas the chart's optional objects are validated against, from the
# registries this build may use: KEDA's and the Prometheus Operator's CRDs are
# files in their Go modules; Strimzi's are published (as validators) on npm.
KEDA_VERSION ?= v2.16.1
PROMETHEUS_OPERATOR_VERSION ?= v0.77.2
STRIMZI_MODELS_VERSION ?= 1.0.1
CRDS_STAMP := $(TOOLS)/crds/.fetched-$(KEDA_VERSION)-$(PROMETHEUS_OPERATOR_VERSION)-$(STRIMZI_MODELS_VERSION)-rules

$(CRDS_STAMP):
	@command -v npm >/dev/null || { echo "npm is needed for the Strimzi CRD validators (apt-get install npm)"; exit 1; }
	mkdir -p $(TOOLS)/crds
	GOMODCACHE=$(TOOLS)/gomod GOFLAGS=-mod=mod go mod download \
	  github.com/kedacore/keda/v2@$(KEDA_VERSION) \
	  github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION)
	cp $(TOOLS)/gomod/github.com/kedacore/keda/v2@$(KEDA_VERSION)/config/crd/bases/keda.sh_scaledobjects.yaml $(TOOLS)/crds/
	cp $(TOOLS)/gomod/github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION)/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml $(TOOLS)/crds/
	cp $(TOOLS)/gomod/github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION)/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml $(TOOLS)/crds/
	chmod u+w $(TOOLS)/crds/*.yaml
	npm install --silent --no-audit --no-fund --prefix $(TOOLS)/npm \
	  @kubernetes-models/strimzi-kafka-operator@$(STRIMZI_MODELS_VERSION)
	touch $@

tools: $(TOOLS)/helm $(TOOLS)/toxiproxy-server $(CRDS_STAMP) ## build helm, toxiproxy and fetch CRD schemas into .tools (needs Go, npm)

# Jaeger v2 (all-in-one) for `synod up --jaeger` and the Jaeger run of
# tests/e2e/test_tracing.py. On request only: from a cold Go cache the build took
# 11 minutes on 2 cores and fetches 1.3 GB of modules, more than CI's budget (CI
# checks traces with tests/otlp_receiver.py). `go install pkg@version` refuses
# it (its go.mod has replace directives), so: download the module, build inside.
JAEGER_MODULE_VERSION ?= v1.76.0
jaeger: $(TOOLS)/jaeger ## build Jaeger v2 into .tools/jaeger (minutes; not part of make test)

$(TOOLS)/jaeger:
	@command -v go >/dev/null || { echo "Go is needed to build Jaeger (apt-get install golang)"; exit 1; }
	GOFLAGS=-mod=mod go mod download github.com/jaegertracing/jaeger@$(JAEGER_MODULE_VERSION)
	cd "$$(go env GOMODCACHE)/github.com/jaegertracing/jaeger@$(JAEGER_MODULE_VERSION)" && \
	  go build -trimpath -o $(TOOLS)/jaeger ./cmd/jaeger

k8s-e2e: venv tools ## build kube-apiserver + etcd (cached in .tools/k8s), then install/upgrade/uninstall the chart on them
	bash hack/build-k8s.sh
	$(VENV)/bin/pytest tests/k8s -v -s

chart-test: venv tools ## helm lint/template + Kubernetes schemas for the chart, Dockerfile, skaffold.yaml
	$(VENV)/bin/pytest tests/chart
