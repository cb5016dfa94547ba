# ancm: generate, lint, test. Every target runs from a fresh clone with only
# Go installed; buf and the protoc plugins are pinned in go.mod as tools.
GO ?= go

.PHONY: all build generate check-generated lint vet fmt-check test test-short bench

all: build

build:
	$(GO) build -o bin/ ./cmd/...

generate:
	$(GO) tool buf generate

# Fails when the committed generated code differs from a fresh run.
check-generated: generate
	@git diff --exit-code --stat -- api/gen || { echo "api/gen is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api/gen)" || { git status --porcelain -- api/gen; echo "api/gen has untracked files: run 'make generate' and commit"; exit 1; }

lint: vet fmt-check
	$(GO) tool buf lint

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt would change:"; echo "$$out"; exit 1; }

# The README's test command: lint, stale-code check, then every test with
# the race detector.
test: lint check-generated
	$(GO) test -race -count=1 ./...

test-short:
	$(GO) test -count=1 ./...

bench:
	./bench/run.sh
