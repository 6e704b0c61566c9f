# cellos-c build. `make` builds the programs into build/; `make check` runs the
# unit tests (cmocka) and the black-box tests (pytest). SANITIZE=1 adds ASan/UBSan.
CC ?= cc
PKGS := jansson libsodium libnftnl libmnl
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu17 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation \
          -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags $(PKGS))
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

.PHONY: all check unit blackbox clean
all: $(B)/cellos-supervisor

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/libcellos.a: $(LIB_OBJ)
	ar rcs $@ $^

$(B)/cellos-supervisor: $(B)/src/main.o $(B)/libcellos.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/test_%: $(B)/tests/unit/test_%.o $(B)/libcellos.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; ./$$t; done

blackbox: all
	/usr/bin/python3 -m pytest -q tests/blackbox

check: unit blackbox

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
