# Parley: set-up is two commands, `make run` and `make test`. Each installs
# what is missing on a Debian machine first (apt packages only when absent,
# Python test peers into .venv), then builds.

SWIFT      ?= swift
PYTHON     ?= python3
VENV       := .venv
SUDO       := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
APT_PACKAGES := pkg-config libssl-dev libopus-dev libvpx-dev libsrtp2-dev libsqlite3-dev python3-venv \
                vpx-tools opus-tools ffmpeg coturn gnuplot-nox openssl chromium chromium-driver
ARGS       ?=

.PHONY: run test deps venv build build-debug unit e2e fuzz-smoke fuzz bench-signaling bench-stun bench-turn bench-primitives clean

run: deps build
	.build/release/parley serve $(ARGS)

test: deps venv build-debug unit e2e fuzz-smoke

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6.1 or newer is required (swift not on PATH)"; exit 1; }

venv: $(VENV)/.installed

$(VENV)/.installed: Tests/e2e/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r Tests/e2e/requirements.txt
	touch $@

build:
	$(SWIFT) build -c release --product parley

# One debug build serves both the Swift tests and the end-to-end suite.
build-debug:
	$(SWIFT) build --build-tests

unit:
	$(SWIFT) test --skip-build

e2e:
	PARLEY_BIN=$(CURDIR)/.build/debug/parley $(VENV)/bin/pytest Tests/e2e -q

# libFuzzer over every parser: a short pass in `make test`, longer by hand
# (`make fuzz FUZZ_SECONDS=600`).
FUZZ_SECONDS ?= 10
fuzz-smoke:
	Fuzz/run.sh 8

fuzz:
	Fuzz/run.sh $(FUZZ_SECONDS)

# package-benchmark suite of the media primitives (a package of its own).
bench-primitives: deps
	cd Benchmarks && $(SWIFT) package benchmark $(ARGS)

bench-signaling: deps build
	.build/release/parley bench signaling $(ARGS)

# STUN/TURN load against Parley and coturn (started on loopback by the bench).
bench-stun: deps build
	.build/release/parley bench stun $(ARGS)

bench-turn: deps build
	.build/release/parley bench turn $(ARGS)

clean:
	rm -rf .build .build-fuzz Benchmarks/.build $(VENV)
