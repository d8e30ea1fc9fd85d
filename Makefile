# The two commands of the README, and a few helpers. CI runs .ci/run, which
# installs the test prerequisites and then runs `make test`.
GO ?= go
export GOTOOLCHAIN ?= local
# containers/image (the host's containers policy, policy/hostpolicy) builds
# without C libraries only with this tag. Exported so that the go builds the
# tests and the demo run themselves get it too; outside make, set
# GOFLAGS=-tags=containers_image_openpgp.
export GOFLAGS += -tags=containers_image_openpgp

.PHONY: demo test build bench fuzz vet

# Run bootsync on its embedded default: a local Git server, a local registry
# and simulated bootc hosts converging on a commit, a revert, a CI diff.
demo:
	$(GO) run ./examples/demo

# The whole test suite.
test:
	$(GO) test -race -timeout 20m ./...

build:
	$(GO) build -o bin/bootsync ./cmd/bootsync

vet:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

# Benchmarks and the performance scripts in test/bench (not part of `test`).
bench:
	bash test/bench/run.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 2m ./hostspec
