# lockwarden - clears stuck App Service (Kudu) deployments.
#
#   make          build build/lockwarden
#   make check    build and run every test (unit, end to end, robustness,
#                 attacks, packaging, deploys against a Kudu stand-in, fuzz
#                 corpus, and again under sanitizers), overlapped, with a
#                 table of each part's time at the end (test/run-check.sh)
#   make check-fast  the unit tests and a smoke run of the end-to-end suite
#   make demo     a first run on a throwaway site tree
#   make bench    print reaction time, memory and idle CPU figures
#   make fuzz     run the libFuzzer targets (FUZZ_SECONDS=30 each)
#   make install  PREFIX=/usr/local DESTDIR= (binary, sample config, hooks)
#   make deb      a Debian package in build/deb/ (packaging/deb.mk)
#   make static   build/static/lockwarden: one static, stripped executable
#                 for containers of any base (no shared library at all)
#   make man      lockwarden(8) and lockwarden.ini(5) in build/man/
#   make systemd-unit  build/systemd/lockwarden.service
#   make sample   regenerate conf/lockwarden.ini from agent/config.def
#   make SAN=1    an ASan+UBSan build in build-san/
#   make WERROR=1 warnings are errors (CI)

VERSION := 0.1.0
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
HOOKDIR ?= $(PREFIX)/lib/lockwarden/hooks

CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS := libuv inih libsystemd

ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# The sanitizers check bounds themselves; FORTIFY's checks would get in their way.
FORTIFY :=
else
BUILD ?= build
SANFLAGS :=
FORTIFY := -D_FORTIFY_SOURCE=2
endif

# Hardened by default (it runs as root next to a share others write): stack
# protector, FORTIFY, a position-independent executable, and full RELRO.
# make check reads them back from the binary (test/packaging/test_build.py).
HARDEN_CPPFLAGS := $(FORTIFY)
HARDEN_CFLAGS := -fstack-protector-strong -fPIE
HARDEN_LDFLAGS := -pie -Wl,-z,relro,-z,now

CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wno-unused-parameter -Wvla -Wimplicit-fallthrough \
	-Wno-format-truncation
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif
# Messages are cut to fixed buffers on purpose (-Wno-format-truncation).
# Recursively expanded on purpose: pkg-config runs only once the deps stamp
# has made sure it and the libraries are there.
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE -DLOCKWARDEN_VERSION='"$(VERSION)"' \
	$(HARDEN_CPPFLAGS) $(CPPFLAGS) $(WARNINGS) $(HARDEN_CFLAGS) $(SANFLAGS) $(CFLAGS) \
	$(shell $(PKG_CONFIG) --cflags $(PKGS))
ALL_LDFLAGS = $(HARDEN_LDFLAGS) $(SANFLAGS) $(LDFLAGS)
# libsystemd is dlopen()ed by notify.c only when NOTIFY_SOCKET is set, so the
# agent links libuv and inih alone (libsystemd's headers are still used).
LIBS = $(shell $(PKG_CONFIG) --libs libuv inih) -ldl

AGENT_SRC := $(wildcard agent/*.c)
AGENT_OBJ := $(patsubst agent/%.c,$(BUILD)/agent/%.o,$(AGENT_SRC))
CORE_OBJ := $(filter-out $(BUILD)/agent/main.o,$(AGENT_OBJ))
UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(patsubst test/unit/%.c,$(BUILD)/%,$(UNIT_SRC))
DEPS_STAMP := build/.deps-build

.PHONY: model static kudu-check fuzz-regress deps-fuzz sample all check check-fast check-build unit e2e robust robust-parallel robust-serial share-check share-parallel share-serial packaging-check san-check demo bench install uninstall clean deps-check deps-build fuzz

all: $(BUILD)/lockwarden

# Plain `make` and `make install` only name the Debian packages that are
# missing; the developer targets (demo, check, bench, fuzz) install them (as
# root, with apt-get) first.
$(DEPS_STAMP): packaging/ensure-deps.sh
	@sh packaging/ensure-deps.sh build --report
	@mkdir -p build && touch $@

deps-check:
	@sh packaging/ensure-deps.sh check

deps-build:
	@sh packaging/ensure-deps.sh build

# -MMD: each object depends on the headers it includes, no more.
$(BUILD)/agent/%.o: agent/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

-include $(AGENT_OBJ:.o=.d)

$(BUILD)/lockwarden: $(AGENT_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# make static: one fully static, stripped executable for containers of any
# base image (glibc or musl, Debian, Ubuntu, Alpine, Azure Linux): no shared
# library, no loader, no NSS. glibc's static libc with Debian's own static
# libuv (libuv_a.a, libuv1-dev) and inih (libinih.a, libinih-dev), so the
# build needs Debian's binary packages alone; README.md (Base images) says
# why not musl. LOCKWARDEN_STATIC compiles out the two dlopen()s of
# libsystemd (notify.c, log.c); nss_none.c keeps glibc's NSS out (it says
# how); and --fatal-warnings makes any of glibc's "requires at runtime the
# shared libraries" link warnings an error, so a new getaddrinfo, getpwnam
# or dlopen cannot slip in. Still a PIE with full RELRO (-static-pie).
STATIC_BUILD := build/static
STATIC_OBJ := $(patsubst agent/%.c,$(STATIC_BUILD)/agent/%.o,$(AGENT_SRC)) \
	$(STATIC_BUILD)/nss_none.o
STATIC_CFLAGS = -std=gnu11 -D_GNU_SOURCE -DLOCKWARDEN_STATIC -DLOCKWARDEN_VERSION='"$(VERSION)"' \
	-D_FORTIFY_SOURCE=2 $(CPPFLAGS) $(WARNINGS) $(HARDEN_CFLAGS) $(CFLAGS) \
	$(shell $(PKG_CONFIG) --cflags $(PKGS))
STATIC_LDFLAGS := -static-pie -Wl,-z,relro,-z,now -Wl,--fatal-warnings
STRIP ?= strip
STATIC_LIBS = $(shell $(PKG_CONFIG) --static --libs libuv-static inih)

static: $(STATIC_BUILD)/lockwarden
	@echo "$<: $$(stat -c %s $<) bytes, statically linked, stripped"

$(STATIC_BUILD)/agent/%.o: agent/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(STATIC_CFLAGS) -MMD -MP -c -o $@ $<

$(STATIC_BUILD)/nss_none.o: packaging/static/nss_none.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(STATIC_CFLAGS) -MMD -MP -c -o $@ $<

-include $(STATIC_OBJ:.o=.d)

# lockwarden.full keeps the symbols, so that test/packaging/test_static.py
# can tell what was linked in.
$(STATIC_BUILD)/lockwarden: $(STATIC_OBJ)
	$(CC) $(STATIC_LDFLAGS) $(LDFLAGS) -o $@.full $^ $(STATIC_LIBS)
	$(STRIP) --strip-all -o $@ $@.full

# Each unit test links only the modules it tests, so one unfinished module
# does not stop the others' tests.
PARSER_OBJ := $(BUILD)/agent/kudu.o $(BUILD)/agent/json.o $(BUILD)/agent/xml.o \
	$(BUILD)/agent/isotime.o $(BUILD)/agent/text.o
$(BUILD)/test_kudu: $(PARSER_OBJ)
$(BUILD)/test_config: $(BUILD)/agent/config.o $(BUILD)/agent/config_table.o $(BUILD)/agent/config_value.o $(BUILD)/agent/config_print.o $(BUILD)/agent/config_env.o $(BUILD)/agent/log.o
$(BUILD)/test_policy: $(BUILD)/agent/policy.o $(BUILD)/agent/policy_plan.o $(BUILD)/agent/policy_history.o $(BUILD)/agent/fmt.o $(BUILD)/agent/hash.o $(BUILD)/agent/clock.o $(BUILD)/agent/site.o $(PARSER_OBJ) $(BUILD)/agent/log.o
$(BUILD)/test_reap: $(BUILD)/agent/reap.o $(BUILD)/agent/rmtree.o $(BUILD)/agent/clock.o $(BUILD)/agent/site.o $(BUILD)/agent/hash.o $(BUILD)/agent/fmt.o $(BUILD)/agent/log.o $(PARSER_OBJ)
$(BUILD)/test_verify: $(BUILD)/agent/verify.o $(BUILD)/agent/site.o $(BUILD)/agent/hash.o $(BUILD)/agent/clock.o
$(BUILD)/test_hook: $(BUILD)/agent/hook.o $(BUILD)/agent/log.o
$(BUILD)/test_metrics: $(BUILD)/agent/metrics.o
$(BUILD)/test_log: $(BUILD)/agent/log.o
$(BUILD)/test_claim: $(BUILD)/agent/claim.o $(BUILD)/agent/incident_notes.o $(BUILD)/agent/archive.o $(BUILD)/agent/archdir.o $(BUILD)/agent/recordwalk.o $(PARSER_OBJ) $(BUILD)/agent/clock.o $(BUILD)/agent/jsonw.o $(BUILD)/agent/log.o $(BUILD)/agent/rmtree.o $(BUILD)/agent/reap.o $(BUILD)/agent/site.o $(BUILD)/agent/hash.o $(BUILD)/agent/fmt.o
$(BUILD)/test_archive: $(BUILD)/agent/archive.o $(BUILD)/agent/archdir.o $(BUILD)/agent/recordwalk.o $(BUILD)/agent/rmtree.o $(PARSER_OBJ) $(BUILD)/agent/clock.o $(BUILD)/agent/jsonw.o $(BUILD)/agent/log.o $(BUILD)/agent/site.o $(BUILD)/agent/hash.o $(BUILD)/agent/fmt.o
$(BUILD)/test_silence: $(BUILD)/agent/silence.o $(BUILD)/agent/silence_read.o $(BUILD)/agent/policy.o $(BUILD)/agent/policy_plan.o $(BUILD)/agent/policy_history.o $(BUILD)/agent/scan.o $(BUILD)/agent/recordwalk.o $(BUILD)/agent/rmtree.o $(BUILD)/agent/clock.o $(BUILD)/agent/site.o $(BUILD)/agent/hash.o $(BUILD)/agent/fmt.o $(BUILD)/agent/config.o $(BUILD)/agent/config_table.o $(BUILD)/agent/config_value.o $(BUILD)/agent/config_print.o $(BUILD)/agent/config_env.o $(PARSER_OBJ) $(BUILD)/agent/log.o
$(BUILD)/test_%: test/unit/test_%.c
	$(CC) $(ALL_CFLAGS) -Iagent -o $@ $< $(filter %.o,$^) $(ALL_LDFLAGS) $(LIBS) -lcmocka

unit: deps-check $(UNIT_BIN)
	@sh test/run-unit.sh $(BUILD) $(UNIT_BIN)

# The tests mostly wait for the agent (the whole suite uses a fraction of one
# core), so they run eight at a time (xdist): each has its own site tree,
# agent and sockets.
E2E_JOBS ?= 8
e2e: deps-check $(BUILD)/lockwarden
	cd test/e2e && PYTHONDONTWRITEBYTECODE=1 LOCKWARDEN_BIN=$(CURDIR)/$(BUILD)/lockwarden \
		/usr/bin/python3 -m pytest -q -rs -p no:cacheprovider -n $(E2E_JOBS) .

# The claim protocol's model, explored exhaustively (test/model).
model:
	cd test/model && PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m pytest -q -rs -s -p no:cacheprovider -n 2 .

# The daemon under faults (issue 3) and under attack (issue 4), on the
# normal build only, since several tests measure or limit resources. Those
# (marked serial, test/pytest.ini) run one at a time after the others, which
# run ROBUST_JOBS at a time: they mostly wait for the agent, each with its
# own site tree, mounts and sockets.
ROBUST_JOBS ?= 12
ROBUST_PYTEST = cd test && PYTHONDONTWRITEBYTECODE=1 LOCKWARDEN_BIN=$(CURDIR)/$(BUILD)/lockwarden \
	/usr/bin/python3 -m pytest -q -rs -p no:cacheprovider
# The serial ones after the others, even under make -j.
robust: robust-parallel
	@$(MAKE) --no-print-directory robust-serial
robust-parallel: deps-check $(BUILD)/lockwarden
	$(ROBUST_PYTEST) -n $(ROBUST_JOBS) -m "not serial" robust attack
robust-serial: deps-check $(BUILD)/lockwarden
	$(ROBUST_PYTEST) -m serial robust attack

# The two kinds of share (test/share: bindfs, and Samba through smbnetfs),
# two at a time: each test has its own smbd on a free port, its own mounts.
# The ones marked serial (they rest on the SMB client's own timeouts) then
# one at a time.
SHARE_JOBS ?= 2
SHARE_PYTEST = cd test/share && PYTHONDONTWRITEBYTECODE=1 LOCKWARDEN_BIN=$(CURDIR)/$(BUILD)/lockwarden \
	/usr/bin/python3 -m pytest -q -rsx -p no:cacheprovider
share-check: share-parallel
	@$(MAKE) --no-print-directory share-serial
share-parallel: deps-check $(BUILD)/lockwarden
	$(SHARE_PYTEST) -n $(SHARE_JOBS) -m "not serial" .
share-serial: deps-check $(BUILD)/lockwarden
	$(SHARE_PYTEST) -m serial .

# Packaging, hooks, man pages, the unit file and the container entrypoint,
# four files at a time (--dist loadfile: the tests of one file share what
# they build, `make install` into build/install or the unit file). What the
# tests would make is made first, so that no two of them run the same make.
PACKAGING_JOBS ?= 4
packaging-check: deps-check $(BUILD)/lockwarden static man deb
	cd test/packaging && PYTHONDONTWRITEBYTECODE=1 LOCKWARDEN_BIN=$(CURDIR)/$(BUILD)/lockwarden \
		/usr/bin/python3 -m pytest -q -rs -p no:cacheprovider -n $(PACKAGING_JOBS) --dist loadfile .

# Deploys against a Kudu stand-in (test/kudu): the 409s stop after a dead
# deployment, with the real agent and the real restart-site hook.
kudu-check: deps-check $(BUILD)/lockwarden
	cd test/kudu && PYTHONDONTWRITEBYTECODE=1 LOCKWARDEN_BIN=$(CURDIR)/$(BUILD)/lockwarden \
		/usr/bin/python3 -m pytest -q -rs -p no:cacheprovider .

# The same unit and end-to-end tests on an ASan+UBSan build.
san-check:
	$(MAKE) SAN=1 unit e2e

# Every suite; test/run-check.sh says how they overlap, logs each part in
# build/check/ and prints each part's time at the end.
check: deps-check
	@MAKE="$(MAKE)" bash test/run-check.sh

# The inner loop (under 2 minutes): the unit tests, then the end-to-end
# tests marked smoke (the agent's main path once).
check-fast: deps-check unit $(BUILD)/lockwarden
	cd test/e2e && PYTHONDONTWRITEBYTECODE=1 LOCKWARDEN_BIN=$(CURDIR)/$(BUILD)/lockwarden \
		/usr/bin/python3 -m pytest -q -rs -p no:cacheprovider -n $(E2E_JOBS) -m smoke .

demo:
	@sh packaging/ensure-deps.sh demo
	@$(MAKE) --no-print-directory $(BUILD)/lockwarden
	@sh test/demo.sh $(BUILD)/lockwarden

bench: deps-check
	@$(MAKE) --no-print-directory $(BUILD)/lockwarden
	@/usr/bin/python3 test/bench/bench.py $(BUILD)/lockwarden

# libFuzzer targets (clang, libclang-rt-14-dev). `make fuzz` runs each for
# FUZZ_SECONDS on the committed corpus plus what it finds in build/fuzz/.
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE \
	-DLOCKWARDEN_VERSION='"$(VERSION)"' -Iagent $(shell $(PKG_CONFIG) --cflags $(PKGS))
PARSER_SRC := agent/kudu.c agent/json.c agent/xml.c agent/isotime.c agent/text.c
FUZZ_SRC_kudu := $(PARSER_SRC)
FUZZ_SRC_json := agent/json.c agent/text.c
FUZZ_SRC_xml := agent/xml.c agent/text.c
FUZZ_SRC_isotime := agent/isotime.c agent/text.c
FUZZ_SRC_policy := agent/policy.c agent/policy_plan.c agent/policy_history.c agent/fmt.c agent/hash.c agent/clock.c agent/site.c \
	agent/log.c $(PARSER_SRC)
FUZZ_SRC_config := agent/config.c agent/config_table.c agent/config_value.c agent/config_print.c agent/config_env.c agent/log.c
FUZZ_SRC_silence := agent/silence.c agent/fmt.c agent/clock.c agent/isotime.c agent/text.c
FUZZ_TARGETS := kudu json xml isotime policy config silence

build/fuzz/fuzz_%: test/fuzz/fuzz_%.c agent/*.c agent/*.h | $(DEPS_STAMP)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRC_$*) $(LIBS)

fuzz: deps-fuzz $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/found-$$t; \
		echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
			-print_final_stats=1 build/fuzz/found-$$t test/fuzz/corpus/$$t \
			2>build/fuzz/fuzz_$$t.log || { tail -40 build/fuzz/fuzz_$$t.log; exit 1; }; \
		grep -E "stat::number_of_executed_units|cov:" build/fuzz/fuzz_$$t.log | tail -2; \
	done

deps-fuzz:
	@sh packaging/ensure-deps.sh fuzz

# Every committed corpus input once through each target: a parser change
# that crashes on a known input fails `make check`.
fuzz-regress: deps-fuzz $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
		build/fuzz/fuzz_$$t -runs=0 test/fuzz/corpus/$$t >build/fuzz/regress-$$t.log 2>&1 \
			|| { tail -40 build/fuzz/regress-$$t.log; exit 1; }; \
		echo "fuzz corpus $$t: $$(ls test/fuzz/corpus/$$t | wc -l) inputs, no crash"; \
	done

# What make check compiles before any suite starts (test/run-check.sh runs
# it for both builds at once):
# each build's binary and unit tests; the normal build also makes what
# packaging-check would (static, man pages, the .deb); the sanitizer build
# also the fuzz targets.
check-build: $(BUILD)/lockwarden $(UNIT_BIN) $(if $(filter 1,$(SAN)),$(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS)),static man deb)

# An existing configuration is never overwritten: the new sample goes
# beside it as lockwarden.ini.sample. The sample and the hooks name the
# hooks' folder of the package and the container (/usr/lib/lockwarden/hooks):
# they are installed with this install's $(HOOKDIR) written in instead.
SHIPPED_HOOKDIR := /usr/lib/lockwarden/hooks
WITH_HOOKDIR = sed 's|$(SHIPPED_HOOKDIR)|$(HOOKDIR)|g'
install: $(BUILD)/lockwarden
	install -D -m 0755 $(BUILD)/lockwarden $(DESTDIR)$(BINDIR)/lockwarden
	@mkdir -p $(BUILD)/install
	$(WITH_HOOKDIR) conf/lockwarden.ini >$(BUILD)/install/lockwarden.ini
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/lockwarden/lockwarden.ini ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/lockwarden/lockwarden.ini; the new sample is lockwarden.ini.sample beside it"; \
		install -m 0644 $(BUILD)/install/lockwarden.ini $(DESTDIR)$(SYSCONFDIR)/lockwarden/lockwarden.ini.sample; \
	else \
		install -D -m 0644 $(BUILD)/install/lockwarden.ini $(DESTDIR)$(SYSCONFDIR)/lockwarden/lockwarden.ini; \
	fi
	install -d $(DESTDIR)$(HOOKDIR)
	for h in restart-site restart-container; do \
		$(WITH_HOOKDIR) packaging/hooks/$$h >$(BUILD)/install/$$h && \
		install -m 0755 $(BUILD)/install/$$h $(DESTDIR)$(HOOKDIR)/$$h || exit 1; \
	done

# conf/lockwarden.ini is generated from agent/config.def; a unit test checks
# that it was regenerated after a change.
sample: $(BUILD)/lockwarden
	$(BUILD)/lockwarden check-config --sample > conf/lockwarden.ini

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/lockwarden
	rm -f $(DESTDIR)$(HOOKDIR)/restart-site $(DESTDIR)$(HOOKDIR)/restart-container

clean:
	rm -rf build build-san

# Each packaging piece brings its own targets (deb, man pages, unit file).
include $(wildcard packaging/*.mk)
