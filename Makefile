# falco-am-bridge. `make demo` shows it working end to end; `make test` is
# what CI runs (.ci/run). Everything the tests need is installed here, into
# bin/tools, with `go install` from the Go module proxy.

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

# Debian's chromium drives the status page and the playground in the
# browser tests; .ci/run installs it (apt-get install chromium).
CHROMIUM ?= /usr/bin/chromium

# The end-to-end tests find the real binaries through these.
TEST_ENV := ALERTMANAGER_BIN=$(TOOLS)/alertmanager AMTOOL_BIN=$(TOOLS)/amtool \
	BRIDGE_BIN=$(BIN)/falco-am-bridge CHROMIUM_BIN=$(CHROMIUM) E2E_REQUIRED=1

.PHONY: all build test unit fuzz bench lint demo tools screenshots clean

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

$(TOOLS)/golangci-lint: $(TOOLS)/.golangci-lint-$(GOLANGCI_LINT_VERSION)

$(TOOLS)/.golangci-lint-$(GOLANGCI_LINT_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@touch $@

# Unit, in-process, end-to-end (real Alertmanager) tests with the race
# detector, then every fuzz target for FUZZTIME on its checked-in corpus.
test: build tools
	$(GO) vet ./...
	$(TEST_ENV) $(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory fuzz

unit:
	$(GO) test -race -count=1 ./pkg/...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/falco
	$(GO) test -run '^$$' -fuzz '^FuzzMap$$' -fuzztime $(FUZZTIME) ./pkg/mapping

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./pkg/...

lint: $(TOOLS)/golangci-lint
	$(GO) vet ./...
	$(TOOLS)/golangci-lint run ./...

demo: build tools
	$(TEST_ENV) $(GO) run ./hack/demo

# The browser test again, saving its screenshots of the status page and the
# playground into docs/ (the README shows them).
screenshots: build tools
	$(TEST_ENV) UI_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -run '^TestUIInBrowser$$' ./hack/e2e

clean:
	rm -rf $(BIN)
