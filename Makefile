# mreg — a model registry that is a filesystem.
# `make help` lists the targets. Objects go under build/.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system
DESTDIR    ?=
PKG_CONFIG ?= pkg-config
CC         ?= cc
BUILD      ?= build
WERROR     ?= 0
SANITIZE   ?=
# MREG_TEST_ID_BITS=N builds chunk ids truncated to N bits (collision tests).
ID_BITS    ?=

V ?= 0
ifeq ($(V),0)
Q = @
say = @printf '  %-6s %s\n' $(1) $(2);
else
Q =
say =
endif

LIBS_CORE := lmdb libxxhash libmd libbsd-overlay libcurl libpq libcrypto
LIBS_FS   := fuse3

# `make test`, `make bench` and `make demo` install what is missing first
# (Debian packages, through tools/install-deps.sh), so that they are the
# only command needed on a fresh machine.
ifneq ($(filter test bench demo,$(MAKECMDGOALS)),)
DEPS_STATUS := $(shell sh tools/install-deps.sh 1>&2; echo $$?)
ifneq ($(DEPS_STATUS),0)
$(error cannot install the packages mreg needs (tools/install-deps.sh))
endif
endif

# Stop early, with a clear message, when a library is missing.
define need_pkgs
$(foreach p,$(1),$(if $(shell $(PKG_CONFIG) --exists $(p) && echo y),,\
  $(error missing library '$(p)' (pkg-config $(p) failed): run 'make deps' or apt-get install liblmdb-dev libxxhash-dev libbsd-dev libmd-dev libcurl4-openssl-dev libssl-dev libpq-dev libfuse3-dev pkg-config)))
endef
ifeq ($(filter clean help deps,$(MAKECMDGOALS)),)
$(call need_pkgs,$(LIBS_CORE) $(LIBS_FS))
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wformat=2 -Wundef -Wvla -Wwrite-strings
ifeq ($(WERROR),1)
WARN += -Werror
endif

# CFLAGS is the user's (make CFLAGS=-O0): what the build cannot do
# without (the include root, the feature macros, the warnings) is added
# with override, so that a CFLAGS on the command line keeps it.
CFLAGS  ?= -O2 -g
override CFLAGS += -std=gnu11 $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	-MMD -MP -Icore $(shell $(PKG_CONFIG) --cflags $(LIBS_CORE) 2>/dev/null)
LDLIBS_CORE := $(shell $(PKG_CONFIG) --libs $(LIBS_CORE) 2>/dev/null) -lpthread
ifneq ($(ID_BITS),)
override CFLAGS += -DMREG_TEST_ID_BITS=$(ID_BITS)
endif
# A sanitizer's report fails the run: without -fno-sanitize-recover,
# UBSan prints and the program goes on (and the test passes).
ifneq ($(SANITIZE),)
override CFLAGS  += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
override LDFLAGS += -fsanitize=$(SANITIZE)
endif
FS_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(LIBS_FS) 2>/dev/null)
FS_LIBS   := $(shell $(PKG_CONFIG) --libs $(LIBS_FS) 2>/dev/null)

# core/ is a tree (leaves at its top, a directory per layer): objects
# mirror it under $(BUILD)/.
CORE_SRC  := $(sort $(shell find core -name '*.c'))
CORE_OBJ  := $(CORE_SRC:%.c=$(BUILD)/%.o)
TOOLS_SRC := $(sort $(wildcard tools/*.c))
TOOLS_OBJ := $(TOOLS_SRC:%.c=$(BUILD)/%.o)
FS_SRC    := $(sort $(wildcard fs/*.c))
FS_OBJ    := $(FS_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(sort $(wildcard tests/unit/test-*.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
LIBCORE   := $(BUILD)/libmregcore.a

.PHONY: all programs core fs tools layers testbins test unit bench install \
	uninstall clean help deps fuzz demo mutate
.SECONDARY:
# `make` builds the two programs; the test binaries (and the fault
# injection build of the core they need) are built by `make test`,
# `make unit` and `make testbins`.
all: programs

# The two programs, without the tests (what the demo and install need).
programs: $(BUILD)/mreg $(BUILD)/mregfs

# One part: the core library, the daemon, the CLI.
core: $(LIBCORE)
fs: $(BUILD)/mregfs
tools: $(BUILD)/mreg

# Every binary the tests run (more below: the crash and fuzz replays).
testbins: $(UNIT_BIN) $(BUILD)/tests/test-collide $(BUILD)/tests/fsstress

# Which layer of core/ may include which (tests/layers.sh; also a part
# of `make test`).
layers:
	$(Q)sh tests/layers.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/fs/%.o: fs/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) $(FS_CFLAGS) -c -o $@ $<

$(LIBCORE): $(CORE_OBJ)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(BUILD)/mreg: $(TOOLS_OBJ) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CORE)

$(BUILD)/mregfs: $(FS_OBJ) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(FS_LIBS) $(LDLIBS_CORE)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIBCORE)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CORE)

# Collision handling, tested with real collisions: chunk ids cut to 8 bits.
$(BUILD)/idbits/chunkid.o: core/chunk/chunkid.c
	@mkdir -p $(dir $@)
	$(call say,CC,$< [ids of 8 bits])$(CC) $(CFLAGS) -DMREG_TEST_ID_BITS=8 -c -o $@ $<

$(BUILD)/tests/test-collide: $(BUILD)/tests/unit/collide.o $(BUILD)/idbits/chunkid.o $(LIBCORE)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CORE)

# A file system stress tool in the spirit of xfstests' fsstress (which
# Debian does not package), for tests/fs/test_fsstress.py.
$(BUILD)/tests/fsstress: $(BUILD)/tests/fs/fsstress.o
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CORE)

# Installs the Debian packages the build, the tests and the demo need.
deps:
	@sh tools/install-deps.sh

test: programs testbins
	$(Q)MREG_BUILD=$(abspath $(BUILD)) sh tests/run.sh

demo: programs
	$(Q)sh tools/demo.sh

unit: testbins
	$(Q)MREG_BUILD=$(abspath $(BUILD)) sh tests/run.sh unit

bench: programs $(LIBCORE)
	$(Q)MREG_BUILD=$(abspath $(BUILD)) sh tests/bench/run.sh

# Mutation testing: each one-line breakage of a rule listed in
# tests/mutate/mutations.txt, applied alone to a scratch copy of the tree
# (never this one), must fail the tests named with it.
PYTHON ?= /usr/bin/python3
MUTATE ?=
FULL   ?=
mutate:
	$(Q)$(PYTHON) tests/mutate/mutate.py $(if $(filter 1,$(FULL)),--full) $(MUTATE)

install: $(BUILD)/mreg $(BUILD)/mregfs
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)/sbin
	install -m 755 $(BUILD)/mreg $(BUILD)/mregfs $(DESTDIR)$(BINDIR)/
	install -m 644 tools/mregfs.service $(DESTDIR)$(UNITDIR)/mregfs.service
	install -m 755 tools/mount.fuse.mregfs $(DESTDIR)/sbin/mount.fuse.mregfs
	# the example with every setting commented out: the defaults, no
	# stage policy in force until an administrator writes one
	test -e $(DESTDIR)$(SYSCONFDIR)/mreg/mreg.conf || { \
		install -d $(DESTDIR)$(SYSCONFDIR)/mreg && \
		sed -e 's/^\([^#;[:space:]]\)/#\1/' mreg.conf.example \
			>$(DESTDIR)$(SYSCONFDIR)/mreg/mreg.conf && \
		chmod 644 $(DESTDIR)$(SYSCONFDIR)/mreg/mreg.conf; }

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mreg $(DESTDIR)$(BINDIR)/mregfs \
		$(DESTDIR)$(UNITDIR)/mregfs.service $(DESTDIR)/sbin/mount.fuse.mregfs

clean:
	rm -rf $(BUILD)

help:
	@echo 'make [V=1] [WERROR=1] [SANITIZE=address,undefined] [ID_BITS=8] TARGET'
	@echo '  all        build build/mreg and build/mregfs (= programs)'
	@echo '  core fs tools  build one part: build/libmregcore.a,'
	@echo '             build/mregfs, build/mreg'
	@echo '  testbins   build every binary the tests run'
	@echo '  layers     check which layer of core/ includes which'
	@echo '  deps       apt-get install what the build and tests need'
	@echo '             (sh tools/install-deps.sh services: and the services'
	@echo '             some tests start, PostgreSQL and radosgw)'
	@echo '  test       run every test; ends with "N passed, N failed"'
	@echo '  unit       run the unit tests only'
	@echo '  bench      run the benchmarks, write tests/bench/BENCHMARKS.md'
	@echo '  crash      crash-simulation trials (CRASH_TRIALS=N, CRASH_SEED=S)'
	@echo '  mutate     break each rule of tests/mutate/mutations.txt in a'
	@echo '             scratch copy, prove the tests catch it (MUTATE="NAME..."'
	@echo '             picks some, FULL=1 runs the whole suite for each)'
	@echo '  fuzz       libFuzzer targets, FUZZ_SECONDS each (default 60)'
	@echo '  demo       mount a registry and show it working (tools/demo.sh)'
	@echo '  install    install into $$(DESTDIR)$$(PREFIX) (PREFIX=$(PREFIX))'
	@echo '  clean      remove build/'

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- reliability: crash, fuzz ----
# A test build of the core with -DMREG_FAULTS (core/io.h: crash simulation
# and fault points armed from the environment) and the CLI on it, in
# $(BUILD)/faults/; the crash test (tests/crash/) links it. `make crash`
# runs many more random crash trials than `make test` does.
FAULTS      := $(BUILD)/faults
FAULTS_LIB  := $(FAULTS)/libmregcore.a
FAULTS_CORE := $(CORE_SRC:%.c=$(FAULTS)/%.o)
FAULTS_TOOL := $(TOOLS_SRC:%.c=$(FAULTS)/%.o)
CRASH_BIN   := $(BUILD)/tests/test-crash $(BUILD)/tests/test-faults \
	$(FAULTS)/mreg
CRASH_TRIALS ?= 500
ifeq ($(origin CRASH_SEED),undefined)
CRASH_SEED  := $(shell date +%s)
endif

# libFuzzer targets (clang), one per tests/fuzz/fuzz-*.c, seed corpora in
# tests/fuzz/<target>/. `make fuzz` runs each for FUZZ_SECONDS; `make test`
# replays the corpora once through the same targets built with $(CC) and
# a plain main() (tests/fuzz/replay.c): no fuzzer runtime needed there.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz-%.c,%,$(wildcard tests/fuzz/fuzz-*.c))
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz-%)
FUZZ_CORE    := $(CORE_SRC:%.c=$(BUILD)/fuzz/%.o)
FUZZ_CFLAGS  := -std=gnu11 -g -O1 $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	-Icore $(shell $(PKG_CONFIG) --cflags $(LIBS_CORE) 2>/dev/null) \
	$(FUZZ_SAN) -fno-omit-frame-pointer
REPLAY_BIN   := $(FUZZ_TARGETS:%=$(BUILD)/tests/test-fuzz-%)

.PHONY: crash fuzz-cc
testbins: $(CRASH_BIN) $(REPLAY_BIN)

$(FAULTS)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$@)$(CC) $(CFLAGS) -DMREG_FAULTS -Itests/unit -c -o $@ $<

$(FAULTS_LIB): $(FAULTS_CORE)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(FAULTS)/mreg: $(FAULTS_TOOL) $(FAULTS_LIB)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CORE)

$(BUILD)/tests/test-crash: $(FAULTS)/tests/crash/crash-test.o $(FAULTS_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CORE)

$(BUILD)/tests/test-faults: $(FAULTS)/tests/crash/fault-test.o $(FAULTS_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CORE)

crash: $(BUILD)/tests/test-crash
	$(Q)$(BUILD)/tests/test-crash --random $(CRASH_TRIALS) \
		--seed $(CRASH_SEED) >$(BUILD)/crash.log 2>&1; rc=$$?; \
	grep -v '^ok ' $(BUILD)/crash.log; \
	echo "$$(grep -c '^ok ' $(BUILD)/crash.log) trials passed," \
		"$$(grep -c '^not ok ' $(BUILD)/crash.log) failed" \
		"(seed $(CRASH_SEED), log in $(BUILD)/crash.log)"; \
	exit $$rc

fuzz-cc:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "make fuzz needs" \
		"clang: '$(FUZZ_CC)' not found (apt-get install clang, or" \
		"FUZZ_CC=...)" >&2; exit 1; }

$(FUZZ_BIN) $(FUZZ_CORE): | fuzz-cc

$(BUILD)/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$@)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/libmregcore.a: $(FUZZ_CORE)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(BUILD)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(BUILD)/fuzz/libmregcore.a
	$(call say,LD,$@)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_CORE)

fuzz: $(FUZZ_BIN)
	$(Q)for t in $(FUZZ_TARGETS); do \
		mkdir -p $(BUILD)/fuzz/corpus/$$t $(BUILD)/fuzz/crashes; \
		echo "  FUZZ   $$t for $(FUZZ_SECONDS)s"; \
		$(BUILD)/fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 -max_len=65536 \
			-artifact_prefix=$(BUILD)/fuzz/crashes/$$t- \
			$(BUILD)/fuzz/corpus/$$t tests/fuzz/$$t \
			>$(BUILD)/fuzz/$$t.log 2>&1 || \
			{ tail -40 $(BUILD)/fuzz/$$t.log; exit 1; }; \
		grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' \
			$(BUILD)/fuzz/$$t.log | tail -2; \
	done

$(BUILD)/tests/fuzz/replay-%.o: tests/fuzz/replay.c
	@mkdir -p $(dir $@)
	$(call say,CC,$@)$(CC) $(CFLAGS) -DFUZZ_TARGET='"$*"' \
		-DFUZZ_CORPUS='"$(CURDIR)/tests/fuzz/$*"' -c -o $@ $<

$(BUILD)/tests/test-fuzz-%: $(BUILD)/tests/fuzz/fuzz-%.o \
		$(BUILD)/tests/fuzz/replay-%.o $(LIBCORE)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CORE)
