# cellos-c build. `make` builds the programs and the man pages into build/; `make
# check` runs the unit tests (cmocka) and the black-box tests (pytest). SANITIZE=1
# adds ASan/UBSan. `make install` / `make uninstall` (PREFIX, DESTDIR): see below.
CC ?= cc
PKGS := jansson libsodium libnftnl libmnl libseccomp
# libcurl's, ldns's and libnats's headers only: they are dlopen()ed when an
# HTTP/S3 export, a DNS lookup or NATS needs them (src/export/curl_dl.h,
# src/isolate/ldns_dl.h, src/sink/nats_dl.h say why).
CURL_CFLAGS := $(shell pkg-config --cflags libcurl ldns)
NATS_CFLAGS := $(shell pkg-config --cflags libnats)
CFLAGS ?= -O2 -g
# The caller's flags (or the default) before anything below is added: the
# release build of `make install` starts again from these.
RELEASE_CFLAGS := $(CFLAGS)
RELEASE_LDFLAGS := $(LDFLAGS)
CFLAGS += -std=gnu17 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation \
          -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags $(PKGS)) $(CURL_CFLAGS) $(NATS_CFLAGS)
LDLIBS += $(shell pkg-config --libs $(PKGS))
ifeq ($(SANITIZE),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

B ?= build
LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/%)

.PHONY: all check unit blackbox clean fuzz fuzz-run man release install uninstall FORCE
all: $(B)/cellos-supervisor $(B)/cellctl $(B)/cellos-agent $(B)/cellos-init $(B)/bench-events man

# cellos-init, the microVM guest's PID 1 (guest/): static, and never built with
# the sanitizers (their runtime needs a full system under it), whatever SANITIZE
# says. Its job parser is also in tests/unit/test_guest_job.c.
GUEST_SRC := $(wildcard guest/*.c) src/util/vm_frame.c
GUEST_CFLAGS := -std=gnu17 -O2 -g0 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -D_GNU_SOURCE -Isrc -Iguest \
                $(shell pkg-config --cflags jansson libsodium)
$(B)/guest-static/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<
$(B)/cellos-init: $(GUEST_SRC:%.c=$(B)/guest-static/%.o)
	$(CC) -static -s -o $@ $^ $(LIBDIR)/libjansson.a $(LIBDIR)/libsodium.a
$(B)/test_guest_job: $(B)/guest/job.o
$(B)/tools/cellctl_image.o: private CFLAGS += -DCELLOS_GUEST_DIR='"$(GUESTDIR)"'
$(B)/guest/job.o: private CFLAGS += -Iguest
$(B)/tests/unit/test_guest_job.o: private CFLAGS += -Iguest
$(B)/test_guest_fc: $(B)/guest/fc_guest.o
$(B)/guest/fc_guest.o: private CFLAGS += -Iguest
$(B)/tests/unit/test_guest_fc.o: private CFLAGS += -Iguest

# The flags every object and program of $(B) is built with, as a file whose time
# changes only when they do: a build with other flags (SANITIZE=1 or not, CFLAGS)
# rebuilds everything, so one build directory never links sanitized objects with
# plain ones (`./scripts/test.sh`, an edit, then `./scripts/demo.sh` did).
BUILD_FLAGS := $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS)
$(B)/.flags: FORCE
	@mkdir -p $(B)
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' > $@
FORCE:

$(B)/%.o: %.c $(B)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/libcellos.a: $(LIB_OBJ)
	ar rcs $@ $^

# The supervisor links the libraries it can statically: the dynamic loader's work
# on five shared libraries was a visible part of every cell (docs/DESIGN.md,
# "Measured costs behind the code"). Where a
# static archive is missing (libmnl on Debian), the shared library is used.
LIBDIR := $(shell pkg-config --variable=libdir libseccomp)
STATIC_A := $(wildcard $(foreach l,jansson sodium nftnl seccomp,$(LIBDIR)/lib$(l).a))
SUPERVISOR_LDLIBS := $(STATIC_A) $(filter-out $(patsubst $(LIBDIR)/lib%.a,-l%,$(STATIC_A)),$(LDLIBS))

# Bound at start-up (-z now): the init and the workload's launcher are forks of
# the supervisor, and every symbol the lazy binder resolved in them wrote to a
# page they then had to copy.
$(B)/cellos-supervisor: $(B)/src/main.o $(B)/libcellos.a
	$(CC) $(LDFLAGS) -Wl,-z,now -Wl,-z,relro -o $@ $^ $(SUPERVISOR_LDLIBS)

# The seccomp baseline is a constant: compiled once here, by the same code, rather
# than by libseccomp at every run (src/isolate/seccomp.c).
$(B)/seccomp-baseline-gen: src/isolate/gen/seccomp_baseline_gen.c src/isolate/seccomp.c src/util/err.c src/util/vec.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCELLOS_SECCOMP_NO_PRECOMPILED $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/gen/seccomp_baseline.inc: $(B)/seccomp-baseline-gen
	@mkdir -p $(dir $@)
	$< > $@.tmp && mv $@.tmp $@ || { rm -f $@.tmp; exit 1; }
$(B)/src/isolate/seccomp.o: $(B)/gen/seccomp_baseline.inc
$(B)/src/isolate/seccomp.o: private CFLAGS += -I$(B)/gen

# cellctl: one file per command (tools/cellctl*.c).
$(B)/cellctl: $(patsubst %.c,$(B)/%.o,$(wildcard tools/cellctl*.c)) $(B)/libcellos.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# cellos-agent: one file per concern (agent/*.c, agent/agent.h says which).
$(B)/cellos-agent: $(patsubst %.c,$(B)/%.o,$(wildcard agent/*.c)) $(B)/libcellos.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Events signed and written per second (bench/bench-signing.sh).
$(B)/bench-events: $(B)/bench/bench_events.o $(B)/libcellos.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/test_%: $(B)/tests/unit/test_%.o $(B)/libcellos.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# These tests act out races between supervisors at flock() and record what would
# be removed instead of touching this host's cgroups (the files say how).
$(B)/test_runreg: private LDFLAGS += -Wl,--wrap=flock,--wrap=cgroup_remove_stale,--wrap=log_msg
$(B)/test_runuid: private LDFLAGS += -Wl,--wrap=flock

# Unit tests that make a libc call fail on demand define __wrap_<call>.
$(B)/test_seccomp: private LDFLAGS += -Wl,--wrap=fstat
$(B)/test_oci_tool: private LDFLAGS += -Wl,--wrap=waitpid

# Every binary runs, whatever an earlier one did; the failures are listed at the end.
unit: $(UNIT_BIN)
	@failed=""; for t in $(UNIT_BIN); do echo "== $$t"; ./$$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "FAILED unit test binaries:$$failed"; exit 1; fi

blackbox: all
	/usr/bin/python3 -m pytest -q tests/blackbox

check: unit blackbox

# libFuzzer harnesses (tests/fuzz/), built with clang and ASan/UBSan into their
# own tree; `make fuzz-run` runs each for FUZZ_SECONDS/4 on the repo corpus.
# No -Werror here: gcc's warnings are the gate, clang's are shown.
FUZZ_CC ?= clang
FB := $(B)/fuzz
FUZZ_CFLAGS := -O1 -g -std=gnu17 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -Isrc \
               $(shell pkg-config --cflags $(PKGS)) -fno-omit-frame-pointer \
               -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(FB)/%,$(wildcard tests/fuzz/fuzz_*.c))

$(FB)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FB)/libcellos.a: $(LIB_SRC:%.c=$(FB)/obj/%.o)
	ar rcs $@ $^

$(FB)/fuzz_%: $(FB)/obj/tests/fuzz/fuzz_%.o $(FB)/libcellos.a
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

fuzz: $(FUZZ_BIN)

fuzz-run: fuzz
	FUZZ_BUILD=$(FB) tests/fuzz/run.sh

# Man pages: docs/man/*.scd is the one source, scdoc(1) writes the roff.
MAN_SRC := $(wildcard docs/man/*.scd)
MAN_OUT := $(MAN_SRC:docs/man/%.scd=$(B)/man/%)
man: $(MAN_OUT)
$(B)/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	scdoc < $< > $@.tmp && mv $@.tmp $@ || { rm -f $@.tmp; exit 1; }

# ---- install / uninstall ----------------------------------------------------
# `make install [PREFIX=/usr/local] [DESTDIR=]`. What is installed is always the
# plain optimised build: `release` builds the programs in their own tree,
# $(RB), with SANITIZE off whatever this make was given, so a `make SANITIZE=1
# all` in $(B) never reaches an installed binary. The caller's CFLAGS, CPPFLAGS
# and LDFLAGS still apply there (the Debian package's hardening flags), without
# what this make added to them.
# debian/ installs exactly this list (PREFIX=/usr); tests/blackbox/test_packaging.py
# checks the list, both ways.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/cellos
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
SCHEMADIR ?= $(DATADIR)/cellos/schema
UNITDIR ?= $(PREFIX)/lib/systemd/system
EXAMPLESDIR ?= $(DOCDIR)/examples
# cellos-init, the microVM guest's init: not a host program, so not in BINDIR.
# cellctl image build looks for it next to itself, then here.
GUESTDIR ?= $(PREFIX)/lib/cellos
INSTALL ?= install
RB := $(B)/release
PROGRAMS := cellos-supervisor cellctl cellos-agent
COMPLETIONS := cellctl cellos-supervisor cellos-agent
# The agent's systemd unit (Delegate=yes: it owns its cells' cgroups).
UNITS := cellos-agent.service
# Every file under examples/ (subdirectories kept), but no dotfile or backup.
EXAMPLE_FILES := $(patsubst examples/%,%,$(shell find examples -type f ! -name '.*' ! -name '*~' 2>/dev/null | LC_ALL=C sort))
# The document's JSON Schema (schema/, docs/reference.md's companion).
SCHEMA_FILES := execution-cell.schema.json policy-pack.schema.json

release:
	CFLAGS='$(RELEASE_CFLAGS)' LDFLAGS='$(RELEASE_LDFLAGS)' $(MAKE) B=$(RB) SANITIZE= $(PROGRAMS:%=$(RB)/%) $(RB)/cellos-init

install: release man
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 0755 $(PROGRAMS:%=$(RB)/%) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -D -m 0755 $(RB)/cellos-init $(DESTDIR)$(GUESTDIR)/cellos-init
	for m in $(MAN_OUT); do \
		$(INSTALL) -D -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/} || exit 1; \
	done
	for c in $(COMPLETIONS); do \
		cat tools/completion/common.bash tools/completion/$$c.bash > $(DESTDIR)$(BASHCOMPDIR)/$$c && \
		chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/$$c || exit 1; \
	done
	for f in $(EXAMPLE_FILES); do \
		$(INSTALL) -D -m 0644 examples/$$f $(DESTDIR)$(EXAMPLESDIR)/$$f || exit 1; \
	done
	$(INSTALL) -d $(DESTDIR)$(SCHEMADIR)
	$(INSTALL) -m 0644 $(SCHEMA_FILES:%=schema/%) $(DESTDIR)$(SCHEMADIR)/
	$(INSTALL) -d $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 0644 $(UNITS:%=packaging/%) $(DESTDIR)$(UNITDIR)/

# Removes exactly what install put there, then the directories that are ours
# alone once they are empty; the shared ones (bin, man/man1, completions) stay.
uninstall:
	rm -f $(PROGRAMS:%=$(DESTDIR)$(BINDIR)/%)
	rm -f $(DESTDIR)$(GUESTDIR)/cellos-init
	[ ! -d $(DESTDIR)$(GUESTDIR) ] || rmdir --ignore-fail-on-non-empty $(DESTDIR)$(GUESTDIR)
	for m in $(notdir $(MAN_OUT)); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; done
	rm -f $(COMPLETIONS:%=$(DESTDIR)$(BASHCOMPDIR)/%)
	rm -f $(EXAMPLE_FILES:%=$(DESTDIR)$(EXAMPLESDIR)/%)
	rm -f $(SCHEMA_FILES:%=$(DESTDIR)$(SCHEMADIR)/%)
	rm -f $(UNITS:%=$(DESTDIR)$(UNITDIR)/%)
	[ ! -d $(DESTDIR)$(EXAMPLESDIR) ] || find $(DESTDIR)$(EXAMPLESDIR) -depth -type d -empty -delete
	for d in $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SCHEMADIR) $(DESTDIR)$(DATADIR)/cellos; do \
		[ ! -d "$$d" ] || rmdir --ignore-fail-on-non-empty "$$d" || exit 1; \
	done

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
