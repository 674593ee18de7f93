# falco-am-bridge. `make demo` shows it working end to end; `make test` is
# what CI runs (.ci/run). Everything the tests need is installed here: Go
# tools into bin/tools with `go install` from the Go module proxy, and
# chromium, promtool and PyYAML from Debian packages (hack/deb-tools).

GO        ?= go
PKG       := github.com/falco-am-bridge/falco-am-bridge
BIN       := $(CURDIR)/bin
TOOLS     := $(BIN)/tools

# Alertmanager 0.32 and later cannot be built with `go install` (their UI
# assets are not in the Go module), so the tests pin the last that can.
ALERTMANAGER_VERSION  := v0.31.1
GOLANGCI_LINT_VERSION := v2.15.0

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w \
	-X github.com/prometheus/common/version.Version=$(VERSION) \
	-X github.com/prometheus/common/version.Revision=$(REVISION) \
	-X github.com/prometheus/common/version.Branch=$(BRANCH) \
	-X github.com/prometheus/common/version.BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

# How long each fuzz target runs in `make test` (and `make fuzz`).
FUZZTIME ?= 30s

# From Debian packages, installed by `make deb-tools` when missing:
# chromium drives the status page and the playground in the browser tests,
# promtool (package prometheus) checks the alerting rules, and python3 with
# PyYAML (python3-yaml) reads the shipped YAML as YAML 1.1 readers do.
CHROMIUM ?= /usr/bin/chromium
PROMTOOL ?= /usr/bin/promtool
PYTHON   ?= /usr/bin/python3

# The end-to-end tests find the real binaries through these.
TEST_ENV := ALERTMANAGER_BIN=$(TOOLS)/alertmanager AMTOOL_BIN=$(TOOLS)/amtool \
	BRIDGE_BIN=$(BIN)/falco-am-bridge CHROMIUM_BIN=$(CHROMIUM) PYTHON_BIN=$(PYTHON) E2E_REQUIRED=1

.PHONY: all build test unit fuzz bench bench-load lint demo tools deb-tools screenshots clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/falco-am-bridge ./cmd/falco-am-bridge

tools: $(TOOLS)/alertmanager $(TOOLS)/amtool

$(TOOLS)/alertmanager $(TOOLS)/amtool: $(TOOLS)/.alertmanager-$(ALERTMANAGER_VERSION)

$(TOOLS)/.alertmanager-$(ALERTMANAGER_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install github.com/prometheus/alertmanager/cmd/alertmanager@$(ALERTMANAGER_VERSION)
	GOBIN=$(TOOLS) $(GO) install github.com/prometheus/alertmanager/cmd/amtool@$(ALERTMANAGER_VERSION)
	@touch $@

deb-tools:
	@CHROMIUM=$(CHROMIUM) PROMTOOL=$(PROMTOOL) PYTHON=$(PYTHON) hack/deb-tools

$(TOOLS)/golangci-lint: $(TOOLS)/.golangci-lint-$(GOLANGCI_LINT_VERSION)

$(TOOLS)/.golangci-lint-$(GOLANGCI_LINT_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@touch $@

# Unit, in-process, end-to-end (real Alertmanager) tests with the race
# detector, then every fuzz target for FUZZTIME on its checked-in corpus.
test: deb-tools build tools
	$(GO) vet ./...
	$(TEST_ENV) $(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory test-deploy
	$(MAKE) --no-print-directory fuzz

unit:
	$(GO) test -race -count=1 ./pkg/...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/falco
	$(GO) test -run '^$$' -fuzz '^FuzzMap$$' -fuzztime $(FUZZTIME) ./pkg/mapping
	$(GO) test -run '^$$' -fuzz '^FuzzFastTemplate$$' -fuzztime $(FUZZTIME) ./pkg/mapping
	$(GO) test -run '^$$' -fuzz '^FuzzIndexControl$$' -fuzztime $(FUZZTIME) ./pkg/mapping
	$(GO) test -run '^$$' -fuzz '^FuzzSegment$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x ./pkg/storage

# Runs of each Go micro-benchmark in `make bench`, and flags for the load
# scenarios (`make bench-load BENCH_FLAGS=-quick` is a smoke run; see
# `go run ./hack/bench -h`).
BENCH_COUNT ?= 3
BENCH_FLAGS ?=

# The Go micro-benchmarks, then the load scenarios against the built binary,
# in front of a fake Alertmanager and the real one, which print a table each
# (the README's Performance section).
bench: build tools
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) ./pkg/...
	$(MAKE) --no-print-directory bench-load

bench-load: build tools
	$(GO) run ./hack/bench -bridge $(BIN)/falco-am-bridge -alertmanager $(TOOLS)/alertmanager $(BENCH_FLAGS)

lint: $(TOOLS)/golangci-lint
	$(GO) vet ./...
	$(TOOLS)/golangci-lint run ./...

demo: build tools
	$(TEST_ENV) $(GO) run ./hack/demo

# The browser test again, saving its screenshots of the status page and the
# playground into docs/ (the README shows them).
screenshots: deb-tools build tools
	$(TEST_ENV) UI_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -run '^TestUIInBrowser$$' ./hack/e2e

clean:
	rm -rf $(BIN)

# ---- Image, Kubernetes manifests, rules and dashboard ----------------------

HELM_VERSION      := v3.22.0
KUSTOMIZE_VERSION := v5.7.1
IMAGE_PLATFORMS   := linux/amd64 linux/arm64
IMAGE_ARCHIVE     := $(BIN)/falco-am-bridge-image.tar
IMAGE_SOURCE      := https://github.com/falco-am-bridge/falco-am-bridge

.PHONY: image deploy-tools test-deploy tidy-all

# hack/image and hack/k8scheck are modules of their own; hack/k8scheck
# imports the bridge (replace => ../..), so a new dependency of the bridge
# needs a tidy there too.
tidy-all:
	$(GO) mod tidy
	$(GO) -C hack/image mod tidy
	$(GO) -C hack/k8scheck mod tidy

# A multi-arch OCI image archive, assembled in Go (hack/image), no
# container engine needed: skopeo inspect oci-archive:bin/falco-am-bridge-image.tar
image:
	@for p in $(IMAGE_PLATFORMS); do \
		echo "build $$p"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -tags timetzdata -ldflags '$(LDFLAGS)' \
			-o $(BIN)/$${p%/*}-$${p#*/}/falco-am-bridge ./cmd/falco-am-bridge || exit 1; \
	done
	$(GO) -C hack/image run . -out $(IMAGE_ARCHIVE) \
		$(foreach p,$(IMAGE_PLATFORMS),-binary $(p)=$(BIN)/$(subst /,-,$(p))/falco-am-bridge) \
		-version $(VERSION) -revision $(REVISION) -source $(IMAGE_SOURCE) \
		-created $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)

deploy-tools: $(TOOLS)/.helm-$(HELM_VERSION) $(TOOLS)/.kustomize-$(KUSTOMIZE_VERSION)

$(TOOLS)/.helm-$(HELM_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@touch $@

$(TOOLS)/.kustomize-$(KUSTOMIZE_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	@touch $@

# The image archive, the Helm chart, the kustomize overlays, the alerting
# rules and the dashboard, checked for real (their own Go modules keep the
# Kubernetes and registry libraries out of the bridge's go.mod).
test-deploy: deb-tools build tools image deploy-tools
	$(GO) -C hack/image vet ./...
	IMAGE_ARCHIVE=$(IMAGE_ARCHIVE) IMAGE_VERSION=$(VERSION) IMAGE_REVISION=$(REVISION) E2E_REQUIRED=1 \
		$(GO) -C hack/image test -count=1 ./...
	$(GO) -C hack/k8scheck vet ./...
	$(TEST_ENV) HELM_BIN=$(TOOLS)/helm KUSTOMIZE_BIN=$(TOOLS)/kustomize PROMTOOL_BIN=$(PROMTOOL) \
		$(GO) -C hack/k8scheck test -race -count=1 ./...
