# sluice: build, test, run and benchmark. `make help` lists the targets.
CC      ?= cc
# Builds use every core (make test's builds took 2 of its 21 minutes one file at a time).
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
PKGS    := librabbitmq libmicrohttpd json-c libcurl libcrypto
WARN    := -std=c17 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wvla -Wformat=2
DEFS    := -D_GNU_SOURCE
INC     := -Icommon -Iingress -Iworker -Icli
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
OPT     ?= -O2 -g
SAN     := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN    := -O1 -g -fsanitize=thread -fno-omit-frame-pointer

COMMON_SRC  := $(wildcard common/*.c)
INGRESS_SRC := $(filter-out ingress/main.c,$(wildcard ingress/*.c))
WORKER_SRC  := $(filter-out worker/main.c,$(wildcard worker/*.c))
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
# The integration suites share the harness; the cluster suites (a three-node
# cluster, run by `run-tests.sh cluster`) also the cluster and ledger helpers.
ITEST_LIB   := $(addprefix tests/integration/,harness.c cluster.c ledger.c)
CLUSTER_SRC := $(addprefix tests/integration/,itest_cluster.c itest_soak.c)
ITEST_SRC   := $(filter-out $(ITEST_LIB) $(CLUSTER_SRC),$(wildcard tests/integration/*.c))
CLI_SRC     := $(wildcard cli/*.c)
BINS        := sluice-ingress sluice-worker sluice-backend $(if $(CLI_SRC),sluice)

# Three trees: build/ for the binaries users run, build/san/ instrumented for
# tests (ASan+UBSan), build/tsan/ with ThreadSanitizer for the threaded ingress.
all: $(addprefix build/,$(BINS))
san: $(addprefix build/san/,$(BINS))
tsan: build/tsan/sluice-ingress build/tsan/sluice-worker build/tsan/sluice-backend

define tree # $(1) = output dir, $(2) = flags
$(1)/obj/%.o: %.c $(wildcard common/*.h ingress/*.h worker/*.h cli/*.h tests/integration/*.h)
	@mkdir -p $$(dir $$@)
	@echo "  CC      $$@"
	@$$(CC) $(2) $$(WARN) $$(DEFS) $$(INC) $$(PKG_CFLAGS) -c $$< -o $$@
# The status page is assembled into admin.o (.incbin): a change rebuilds it.
$(1)/obj/ingress/admin.o: ingress/page.html
$(1)/libsluice.a: $$(COMMON_SRC:%.c=$(1)/obj/%.o)
	$$(AR) rcs $$@ $$^
$(1)/libingress.a: $$(INGRESS_SRC:%.c=$(1)/obj/%.o)
	$$(AR) rcs $$@ $$^
$(1)/libworker.a: $$(WORKER_SRC:%.c=$(1)/obj/%.o)
	$$(AR) rcs $$@ $$^
$(1)/sluice-ingress: $(1)/obj/ingress/main.o $(1)/libingress.a $(1)/libsluice.a
	$$(CC) $(2) $$^ $$(PKG_LIBS) -o $$@
$(1)/sluice-worker: $(1)/obj/worker/main.o $(1)/libworker.a $(1)/libsluice.a
	$$(CC) $(2) $$^ $$(PKG_LIBS) -o $$@
$(1)/sluice-backend: $(1)/obj/tests/tools/backend.o $(1)/libsluice.a
	$$(CC) $(2) $$^ $$(PKG_LIBS) -o $$@
$(1)/sluice: $$(CLI_SRC:%.c=$(1)/obj/%.o) $(1)/libsluice.a
	$$(CC) $(2) $$^ $$(PKG_LIBS) -o $$@
endef
$(eval $(call tree,build,$(OPT)))
$(eval $(call tree,build/san,$(SAN)))
$(eval $(call tree,build/tsan,$(TSAN)))

UNIT_BINS  := $(UNIT_SRC:tests/unit/%.c=build/san/%)
ITEST_BINS := $(ITEST_SRC:tests/integration/%.c=build/san/%)
CLUSTER_BINS := $(CLUSTER_SRC:tests/integration/%.c=build/san/%)
# The quorum-mode run takes the suites whose outcome depends on the queues'
# type (declarations, delivery, redelivery, dead-lettering, priorities,
# single active consumers, the claims stream, the dead queue's passes and
# the redelivery count of poison messages); the others (the edge, the
# CLI, the status page, metrics) touch no queue differently and run once.
# TIMED_ITESTS measure rates, deadlines or how long things take: make test
# runs them one at a time after the others, which run in two groups.
TIMED_ITESTS := itest_client itest_contract itest_delivery itest_hostile itest_resilience \
  itest_routes itest_shaping itest_slowload
QUORUM_ITESTS := $(filter $(addprefix build/san/itest_,smoke api resilience retries shaping contract deadletters callbacks),$(ITEST_BINS))
build/san/test_%: build/san/obj/tests/unit/test_%.o build/san/libingress.a build/san/libworker.a build/san/libsluice.a
	$(CC) $(SAN) $^ $(CHECK_LIBS) $(PKG_LIBS) -o $@
# The CLI's progress line is tested alone, without the CLI's main.
build/san/test_progress: build/san/obj/cli/progress.o
build/tsan/test_%: build/tsan/obj/tests/unit/test_%.o build/tsan/libingress.a build/tsan/libworker.a build/tsan/libsluice.a
	$(CC) $(TSAN) $^ $(CHECK_LIBS) $(PKG_LIBS) -o $@
build/san/itest_%: build/san/obj/tests/integration/itest_%.o $(ITEST_LIB:%.c=build/san/obj/%.o) build/san/libsluice.a
	$(CC) $(SAN) $^ $(CHECK_LIBS) $(PKG_LIBS) -o $@

# Fuzzing: libFuzzer targets built with clang into build/fuzz/, with the
# common sources instrumented alike. scripts/fuzz.sh runs each for FUZZ_S
# seconds from its seed corpus in tests/fuzz/<target>/.
FUZZ_CC      ?= clang
FUZZ_FLAGS   := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,build/fuzz/fuzz_%,$(wildcard tests/fuzz/fuzz_*.c))
build/fuzz/obj/%.o: %.c $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $@"
	@$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(WARN) $(DEFS) $(INC) $(PKG_CFLAGS) -c $< -o $@
build/fuzz/libsluice.a: $(COMMON_SRC:%.c=build/fuzz/obj/%.o)
	$(AR) rcs $@ $^
build/fuzz/fuzz_%: build/fuzz/obj/tests/fuzz/fuzz_%.o build/fuzz/libsluice.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $^ $(PKG_LIBS) -o $@
build/fuzz/amqp_seeds: build/fuzz/obj/tests/fuzz/amqp_seeds.o build/fuzz/libsluice.a
	$(FUZZ_CC) $(FUZZ_FLAGS) $^ $(PKG_LIBS) -o $@
fuzz-build: $(FUZZ_TARGETS)
# fuzz-seeds remakes the AMQP seeds from the envelope seeds (checked in).
fuzz-seeds: build/fuzz/amqp_seeds
	@build/fuzz/amqp_seeds tests/fuzz/envelope_amqp tests/fuzz/envelope_json/*
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@scripts/fuzz.sh $(FUZZ_TARGETS)

BENCH_TOOLS := $(patsubst bench/%.c,build/bench/%,$(filter-out bench/bench.c,$(wildcard bench/*.c)))
BENCH_LIB   := $(if $(wildcard bench/bench.c),build/obj/bench/bench.o)
build/bench/%: build/obj/bench/%.o $(BENCH_LIB) build/libsluice.a
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $^ $(PKG_LIBS) -o $@
bench-tools: $(BENCH_TOOLS)

# bench is not part of test (it takes minutes); test runs its --smoke form.
bench: deps all bench-tools
	@bench/run.sh

deps:
	@scripts/deps.sh

unit: $(UNIT_BINS)
	@scripts/run-tests.sh unit $(UNIT_BINS)

integration: san $(ITEST_BINS)
	@scripts/run-tests.sh integration $(ITEST_BINS)

# cluster-test runs the cluster suite alone: a node killed under load
# (docs/clustering.md). soak runs the chaos soak for SOAK_S seconds (default
# 600): workers, ingress replicas and nodes killed and restarted at random,
# every answer in a ledger; it fails on any lost request.
SOAK_S ?= 600
cluster-test: san $(CLUSTER_BINS)
	@scripts/run-tests.sh cluster build/san/itest_cluster

soak: san $(CLUSTER_BINS)
	@SOAK_S=$(SOAK_S) SLUICE_TEST_TIMEOUT=$$(($(SOAK_S) + 900)) \
	  scripts/run-tests.sh cluster build/san/itest_soak

# tsan-test runs the publisher's unit tests (a fake broker whose confirms
# meet the reaper's deadlines) under ThreadSanitizer, then the resilience
# cases tagged "tsan" (the broker going down, the broker frozen until the
# confirm timeout answers) against the ThreadSanitizer binaries. The first
# race report stops the process and fails the test.
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
tsan-test: tsan build/tsan/test_publisher build/san/itest_resilience
	@$(TSAN_ENV) scripts/run-tests.sh unit build/tsan/test_publisher
	@SLUICE_TEST_BIN=build/tsan CK_INCLUDE_TAGS=tsan $(TSAN_ENV) \
	  scripts/run-tests.sh integration build/san/itest_resilience

# test is what CI runs: install, build, check the docs (the OpenAPI document
# against its schema and the sources' error codes too) and deploy files, run
# every suite (unit suites and the integration suites that time nothing in
# two groups, each against a private broker that run-tests.sh starts and
# stops, then the TIMED_ITESTS one at a time), those about the queues again in
# quorum-queue mode, the cluster suite and a 2-minute soak against a
# three-node cluster, a smoke run of the benchmark, the browser test, the
# ThreadSanitizer run (tsan-test), each fuzz target for FUZZ_S seconds (5 by
# default here, 60 with make fuzz), and docker-compose.yml run for real on a
# local Docker engine (compose-test.sh). The compose test runs beside the
# steps from the cluster suites to the fuzz targets (scripts/beside.sh): it
# mostly waits on downloads and containers, and the timed suites (both
# integration passes) run with nothing beside them.
test: deps
	@$(MAKE) --no-print-directory all bench-tools
	@scripts/gen-docs.sh --check
	@python3 scripts/check-openapi.py
	@scripts/check-deploy.sh
	@$(MAKE) --no-print-directory san $(UNIT_BINS) $(ITEST_BINS) $(CLUSTER_BINS)
	@SLUICE_QUEUE_TYPE=quorum scripts/run-tests.sh integration $(QUORUM_ITESTS)
	@scripts/beside.sh build/compose-test.log scripts/compose-test.sh -- \
	  $(MAKE) --no-print-directory test-beside-compose
	@SLUICE_TEST_JOBS=2 SLUICE_TEST_ALONE="$(TIMED_ITESTS)" \
	  scripts/run-tests.sh integration $(UNIT_BINS) $(ITEST_BINS)

# test-beside-compose is the part of make test that runs beside the compose test.
test-beside-compose: san $(CLUSTER_BINS)
	@SOAK_S=120 scripts/run-tests.sh cluster $(CLUSTER_BINS)
	@bench/run.sh --smoke
	@scripts/browser-test.sh
	@$(MAKE) --no-print-directory tsan-test
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_S=$${FUZZ_S:-5} scripts/fuzz.sh $(FUZZ_TARGETS)

check-deploy: all
	@scripts/check-deploy.sh

# compose-test runs docker-compose.yml for real: engine, images, scaling, down.
compose-test:
	@scripts/compose-test.sh

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh

docs: build/sluice-ingress
	@scripts/gen-docs.sh

format:
	clang-format -i common/*.[ch] ingress/*.[ch] worker/*.[ch] cli/*.[ch] bench/*.[ch] tests/*/*.[ch]

clean:
	rm -rf build

help:
	@echo "make            build build/sluice-ingress, build/sluice-worker, build/sluice-backend"
	@echo "make run        install what is missing, start a broker, ingress, 2 workers, demo backend"
	@echo "make test       install what is missing, unit + integration tests (ASan/UBSan)"
	@echo "make unit       unit tests only"
	@echo "make tsan-test  publisher unit tests and broker-down/frozen cases under ThreadSanitizer"
	@echo "make cluster-test  the cluster suite: a node of three killed under load"
	@echo "make soak       chaos soak on three nodes for SOAK_S seconds (default 600), with a ledger"
	@echo "make compose-test  docker-compose.yml run for real (starts dockerd, builds the images)"
	@echo "make fuzz       run each libFuzzer target for FUZZ_S seconds (default 60)"
	@echo "make clean      remove build/"

.PHONY: all san tsan tsan-test test-beside-compose bench bench-tools check-deploy compose-test deps unit integration cluster-test soak test run docs format clean help fuzz fuzz-build fuzz-seeds
.SECONDARY:
