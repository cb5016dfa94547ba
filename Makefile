# ancm: generate, lint, test, build, package. Every target runs from a
# fresh clone with only Go installed (deb-check also needs dpkg and root);
# buf, the protoc plugins and nfpm are pinned in go.mod as tools.
GO ?= go

# The version stamped into the binaries and the package: the last v* tag
# (with -N-gHASH past it), else v0.0.0-dev; the commit and a dirty flag go
# beside it. See internal/buildinfo.
VERSION  ?= $(shell git describe --tags --match 'v*' 2>/dev/null || echo v0.0.0-dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
MODIFIED ?= $(shell test -n "$$(git status --porcelain --untracked-files=no 2>/dev/null)" && echo true)
BUILDINFO := github.com/ancm-dev/ancm/internal/buildinfo
LDFLAGS  := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).modified=$(MODIFIED)

# The Debian version: 1.2.3 for v1.2.3, 1.2.3+4.gabcdef past it,
# 0.0.0~git20260102.abcdef1 with no tag.
SHORT_COMMIT := $(shell git rev-parse --short=7 HEAD 2>/dev/null)
COMMIT_DATE  := $(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null)
DEB_VERSION ?= $(if $(filter v0.0.0-dev,$(VERSION)),0.0.0~git$(COMMIT_DATE).$(SHORT_COMMIT),$(shell echo '$(VERSION)' | sed -e 's/^v//' -e 's/-\([0-9]*\)-g/+\1.g/'))
DEB_ARCH ?= $(shell $(GO) env GOARCH)

.PHONY: all build man deb deb-check generate check-generated lint vet fmt-check test test-short bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# Man pages: ancmd(8) and ancmctl(1), a page per verb, from the cobra
# commands; ancm.hcl(5) from docs/configuration.md (go-md2man, a tool in
# go.mod).
man: build
	rm -rf man && mkdir -p man
	bin/ancmd man man
	bin/ancmctl man man
	{ printf '%% ANCM.HCL 5 "" "ancm $(VERSION)" "ancm manual"\n\n'; cat docs/configuration.md; } | $(GO) tool go-md2man > man/ancm.hcl.5

# dist/ancm_VERSION_ARCH.deb: binaries, man pages, the systemd unit, the
# default config as a conffile, the docs. packaging/nfpm.yaml says what goes
# where.
deb: build man
	rm -rf build/deb dist/ancm_*.deb && mkdir -p build/deb/man dist
	sed 's|/usr/local/bin/|/usr/bin/|g' contrib/ancmd.service > build/deb/ancmd.service
	for f in man/*; do gzip -9n < "$$f" > build/deb/man/$$(basename "$$f").gz; done
	bin/ancmctl completion bash > build/deb/ancmctl.bash
	VERSION='$(DEB_VERSION)' ARCH='$(DEB_ARCH)' $(GO) tool nfpm package -f packaging/nfpm.yaml -p deb -t dist/

# Builds the package, inspects it, installs it, runs what it installed and
# removes it again: CI runs this as root on a Debian machine.
deb-check: deb
	packaging/check-deb.sh dist/ancm_$(DEB_VERSION)_$(DEB_ARCH).deb

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

clean:
	rm -rf bin man build dist
