# loyalty-edge: build, test, demo and benchmarks.
#
#   make            build build/ngx_http_loyalty_module.so and
#                   build/loyalty-worker
#   make test       install dependencies, build, run every test (prove)
#   make test-asan  the same suite against an ASan/UBSan build
#   make demo       run the two-store demo on loopback
#   make bench      benchmarks (not part of make test)

SHELL        := /bin/bash
CC           ?= cc
NGX_SRC      ?= /usr/share/nginx/src
BUILD        := build
MODULE       := $(BUILD)/ngx_http_loyalty_module.so
ASAN_MODULE  := $(BUILD)/asan/ngx_http_loyalty_module.so

# Debian packages needed by the build, tests, demo and benchmarks.
DEPS_PKGS := gcc make perl nginx nginx-dev redis-server \
    libhiredis-dev libssl-dev libxml2-dev \
    libpcre2-dev zlib1g-dev libevent-dev libcurl4-openssl-dev \
    libyaml-dev libcyaml-dev wrk procps \
    libnginx-mod-http-lua lua-nginx-redis lua-nginx-string lua-cjson \
    clang libclang-rt-14-dev nodejs

CORE_SRCS   := $(wildcard src/core/*.c)
CORE_HDRS   := $(wildcard src/core/*.h)
# plain C of the worker's sync logic (no I/O), unit-tested like src/core
SYNC_SRCS   := $(wildcard src/sync/*.c)
SYNC_HDRS   := $(wildcard src/sync/*.h)
MODULE_SRCS := $(wildcard src/module/*.c) $(wildcard src/module/*.h)
UNIT_SRCS   := $(wildcard t/unit/test_*.c)
UNIT_BINS   := $(patsubst t/unit/%.c,$(BUILD)/t/unit/%.t,$(UNIT_SRCS))
ASAN_UNITS  := $(patsubst t/unit/%.c,$(BUILD)/asan/t/unit/%.t,$(UNIT_SRCS))

# Debian's own compiler flags for nginx, so the module matches the binary.
NGX_CC_OPT  := -g -O2 -fstack-protector-strong -Wformat \
    -Werror=format-security -fPIC -Wdate-time -D_FORTIFY_SOURCE=2
NGX_LD_OPT  := -Wl,-z,relro -Wl,-z,now -fPIC
SAN_FLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer \
    -fno-sanitize-recover=undefined
XML_CFLAGS  := -I/usr/include/libxml2
UNIT_CFLAGS := -std=gnu99 -Wall -Wextra -Werror -g -O1 -Isrc/core \
    -Isrc/sync -It/lib $(XML_CFLAGS)
UNIT_LIBS   := -lcrypto -lxml2

LIBASAN     = $(shell $(CC) -print-file-name=libasan.so)

WORKER      := $(BUILD)/loyalty-worker
WORKER_SRCS := $(wildcard src/worker/*.c)
WORKER_HDRS := $(wildcard src/worker/*.h)
WORKER_CFLAGS := -std=gnu99 -Wall -Wextra -Werror -O2 -g -Isrc/core \
    -Isrc/sync -Isrc/worker $(XML_CFLAGS)
WORKER_LIBS := -lhiredis -levent -lcurl -lcyaml -lcrypto -lxml2

.PHONY: all module worker module-asan unit deps test test-asan demo bench \
    bench-edge clean bench-core fuzz sandbox bench-worker bench-salesforce

all: module worker

worker: $(WORKER)

ASAN_WORKER := $(BUILD)/asan/loyalty-worker

$(ASAN_WORKER): $(WORKER_SRCS) $(WORKER_HDRS) $(CORE_SRCS) $(CORE_HDRS) \
        $(SYNC_SRCS) $(SYNC_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WORKER_CFLAGS) -O1 $(SAN_FLAGS) -o $@.tmp $(WORKER_SRCS) \
	    $(CORE_SRCS) $(SYNC_SRCS) $(WORKER_LIBS) && mv $@.tmp $@

$(WORKER): $(WORKER_SRCS) $(WORKER_HDRS) $(CORE_SRCS) $(CORE_HDRS) \
        $(SYNC_SRCS) $(SYNC_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WORKER_CFLAGS) -o $@.tmp $(WORKER_SRCS) $(CORE_SRCS) \
	    $(SYNC_SRCS) $(WORKER_LIBS) && mv $@.tmp $@

deps:
	@missing=""; \
	for p in $(DEPS_PKGS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	    echo "deps: all installed"; \
	fi

module: $(MODULE)

# configure once per build tree; the generated objs/Makefile tracks the
# module's sources, so later runs only recompile what changed
$(BUILD)/nginx/objs/Makefile: config
	rm -rf $(BUILD)/nginx && mkdir -p $(BUILD)
	cp -a $(NGX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && . ./conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" --with-cc-opt="$(NGX_CC_OPT)" \
	    --with-ld-opt="$(NGX_LD_OPT)" --add-dynamic-module=$(CURDIR) \
	    > configure.log 2>&1 || { tail -30 configure.log; exit 1; }

$(MODULE): $(BUILD)/nginx/objs/Makefile $(CORE_SRCS) $(CORE_HDRS) \
        $(MODULE_SRCS)
	$(MAKE) -s -C $(BUILD)/nginx -f objs/Makefile modules
	@# a new inode: a running nginx keeps its mapping of the old file
	cp $(BUILD)/nginx/objs/ngx_http_loyalty_module.so $@.tmp && mv $@.tmp $@

module-asan: $(ASAN_MODULE)

$(BUILD)/nginx-asan/objs/Makefile: config
	rm -rf $(BUILD)/nginx-asan && mkdir -p $(BUILD)
	cp -a $(NGX_SRC) $(BUILD)/nginx-asan
	cd $(BUILD)/nginx-asan && . ./conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="-g -O1 -fPIC $(SAN_FLAGS)" \
	    --with-ld-opt="-fPIC $(SAN_FLAGS)" --add-dynamic-module=$(CURDIR) \
	    > configure.log 2>&1 || { tail -30 configure.log; exit 1; }

$(ASAN_MODULE): $(BUILD)/nginx-asan/objs/Makefile $(CORE_SRCS) \
        $(CORE_HDRS) $(MODULE_SRCS)
	$(MAKE) -s -C $(BUILD)/nginx-asan -f objs/Makefile modules
	mkdir -p $(dir $@)
	cp $(BUILD)/nginx-asan/objs/ngx_http_loyalty_module.so $@.tmp \
	    && mv $@.tmp $@

unit: $(UNIT_BINS)

$(BUILD)/t/unit/%.t: t/unit/%.c $(CORE_SRCS) $(CORE_HDRS) $(SYNC_SRCS) \
        $(SYNC_HDRS) t/lib/tap.h t/lib/loyalty_test.h
	@mkdir -p $(dir $@)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(CORE_SRCS) $(SYNC_SRCS) $(UNIT_LIBS)

$(BUILD)/asan/t/unit/%.t: t/unit/%.c $(CORE_SRCS) $(CORE_HDRS) \
        $(SYNC_SRCS) $(SYNC_HDRS) t/lib/tap.h t/lib/loyalty_test.h \
        t/lib/loyalty_case.h
	@mkdir -p $(dir $@)
	$(CC) $(UNIT_CFLAGS) $(SAN_FLAGS) -o $@ $< $(CORE_SRCS) $(SYNC_SRCS) \
	    $(UNIT_LIBS)

test: deps
	$(MAKE) all unit
	prove -r t/ $(BUILD)/t/unit/

# The stock nginx binary loads the sanitized module; libasan must be the
# first library in the process, so the harness preloads it into nginx only.
test-asan: deps
	$(MAKE) module-asan $(ASAN_UNITS) $(ASAN_WORKER)
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    prove $(BUILD)/asan/t/unit/
	LOYALTY_MODULE=$(CURDIR)/$(ASAN_MODULE) \
	LOYALTY_NGINX_PRELOAD=$(LIBASAN) \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1 \
	    prove -r t/edge/
	LOYALTY_WORKER=$(CURDIR)/$(ASAN_WORKER) \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    prove -r t/worker/ t/e2e/

demo: deps
	$(MAKE) all
	t/demo/run

# The emulated external APIs (docs/sandbox.md), in the foreground.
SANDBOX_LISTEN ?= 127.0.0.1:8090
sandbox: deps
	node src/sandbox/loyalty-sandbox.js --listen $(SANDBOX_LISTEN)

bench: bench-edge bench-core bench-worker bench-salesforce

bench-edge: deps
	$(MAKE) all
	t/bench/edge

# issue 4: loyalty-worker draining a pre-filled stream (docs/benchmarks.md)
bench-worker: deps
	$(MAKE) all
	t/bench/worker

# issue 5: records per Salesforce call, API calls per 10,000 events
bench-salesforce: deps
	$(MAKE) all
	t/bench/salesforce

clean:
	rm -rf $(BUILD)

# src/core per event (verify, normalize, parts), optimised, no sanitizers
BENCH_CFLAGS := -std=gnu99 -Wall -Wextra -O2 -g -Isrc/core -It/lib $(XML_CFLAGS)

bench-core: deps
	@mkdir -p $(BUILD)/bench
	$(CC) $(BENCH_CFLAGS) -o $(BUILD)/bench/core t/bench/core.c \
	    $(CORE_SRCS) $(UNIT_LIBS)
	$(BUILD)/bench/core

# libFuzzer targets over src/core, one per normaliser plus the signature
# headers and the SOAP parser; fuzz_NAME is seeded from t/data/NAME (the
# golden payloads; fuzz_soap from t/data/salesforce) and t/fuzz/seeds.
# A crash, leak or sanitizer report
# fails the run.  CI runs each for 20 s: make fuzz FUZZ_SECONDS=20
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst t/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard t/fuzz/fuzz_*.c))

$(BUILD)/fuzz/%: t/fuzz/%.c $(CORE_SRCS) $(CORE_HDRS) $(SYNC_SRCS) \
        $(SYNC_HDRS) t/lib/loyalty_test.h
	@mkdir -p $(dir $@)
	clang -std=gnu99 -Wall -Wextra -Werror -g -O1 \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    -Isrc/core -Isrc/sync -It/lib $(XML_CFLAGS) -o $@ $< $(CORE_SRCS) \
	    $(SYNC_SRCS) $(UNIT_LIBS)

fuzz: deps
	$(MAKE) $(FUZZ_TARGETS)
	@for f in $(FUZZ_TARGETS); do \
	    name=$${f##*/fuzz_}; \
	    [ $$name = soap ] && name=salesforce; \
	    seeds=t/fuzz/seeds; \
	    if [ -d t/data/$$name ]; then seeds="t/data/$$name $$seeds"; fi; \
	    mkdir -p $$f.corpus; \
	    echo "fuzz: $$f for $(FUZZ_SECONDS) s ($$seeds)"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 \
	        -artifact_prefix=$(BUILD)/fuzz/ $$f.corpus $$seeds \
	        2>$$f.log || { tail -40 $$f.log; exit 1; }; \
	    grep -E '^(Done|#[0-9]+ +DONE)' $$f.log | tail -1; \
	done
