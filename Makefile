# petcut - build, set-up, tests and benchmarks.
#
#   make run     install what is missing, fetch the model, build, cut out the sample photo
#   make test    install what is missing, fetch the model, build, run the whole suite
#   make         build build/petcut (dependencies must be installed)
#   make test SAN=1   the same suite on an ASan + UBSan build (in build-san/)
#   make bench   side-by-side benchmark against ONNX Runtime; writes BENCHMARKS.md figures
#   make fuzz    libFuzzer on every fuzz target (FUZZ_SECONDS each, default 120)
#   make soak    mixed load on 200 connections for SOAK_MINUTES (default 30); RSS growth bounded
#   make install / make uninstall   PREFIX (default /usr/local) and DESTDIR: the binary, man pages,
#                the systemd units and the bash completion

CC      ?= cc
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      = -O1
else
BUILD   ?= build
SANFLAGS =
OPT      = -O2
endif

PKGS     = vips gmodule-no-export-2.0 libprotobuf-c libcrypto jansson libmicrohttpd libcurl hiredis zlib libdeflate libisal
CFLAGS  ?= $(OPT) -g
WARN     = -Wall -Wextra -Wstrict-prototypes -Wno-unused-parameter -Wno-missing-field-initializers
ifeq ($(CI),true)
WARN    += -Werror
endif
# where libvips' loadable modules are (img_need_heif)
VIPS_LIBDIR := $(shell pkg-config --variable=libdir vips 2>/dev/null)
CPPFLAGS_ALL = -std=c11 -D_GNU_SOURCE -Isrc -I$(BUILD)/gen $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
	       -DPETCUT_VIPS_LIBDIR='"$(VIPS_LIBDIR)"'
LDLIBS_ALL   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldnnl -lgomp -lm -lpthread
ALLFLAGS = $(CPPFLAGS_ALL) $(CPPFLAGS) $(CFLAGS) $(WARN) $(SANFLAGS) -fopenmp -MMD -MP

ONNX_PROTO ?= /usr/include/onnx/onnx.proto
GEN_C   = $(BUILD)/gen/onnx.pb-c.c
GEN_H   = $(BUILD)/gen/onnx.pb-c.h

LIB_SRC = $(sort $(wildcard src/nn/*.c src/img/*.c src/model/*.c src/batcher/*.c src/metrics/*.c src/store/*.c src/http/*.c src/cache/*.c src/kv/*.c src/util/*.c src/pipeline/*.c))
CLI_SRC = $(sort $(wildcard src/cli/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/onnx.pb-c.o $(BUILD)/gen/openapi.o $(BUILD)/gen/web.o \
	  $(BUILD)/gen/version.o
# the browser side (upload module and demo page), built into petcut and served at /
WEB_FILES = $(sort $(wildcard web/*.html web/*.js web/*.css))
CLI_OBJ = $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(sort $(wildcard tests/unit/*.c))
TEST_BIN = $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# each fuzz target also builds as a plain program replaying its corpus
FUZZ_SRC = $(sort $(wildcard fuzz/*_fuzzer.c))
FUZZ_REPLAY = $(FUZZ_SRC:fuzz/%_fuzzer.c=$(BUILD)/tests/test_fuzz_%)

.PHONY: all deps models run test check bench fuzz soak clean FORCE man install uninstall
all: $(BUILD)/petcut $(TEST_BIN) $(FUZZ_REPLAY)

$(GEN_C) $(GEN_H): $(ONNX_PROTO)
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -I$(dir $(ONNX_PROTO)) $(ONNX_PROTO)

$(BUILD)/gen/onnx.pb-c.o: $(GEN_C)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS) $(SANFLAGS) -c $< -o $@

# the OpenAPI document, served at /openapi.json, as a C string
$(BUILD)/gen/openapi.c: src/http/openapi.json
	@mkdir -p $(dir $@)
	{ echo '/* generated from src/http/openapi.json */'; echo 'const char http_openapi_json[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; echo ';'; } > $@

$(BUILD)/gen/openapi.o: $(BUILD)/gen/openapi.c
	$(CC) $(CFLAGS) $(SANFLAGS) -c $< -o $@

# the version (VERSION) and the commit built, looked at on every build and
# rewritten only when they change
$(BUILD)/gen/version.c: FORCE
	@scripts/version.sh $@

$(BUILD)/gen/version.o: $(BUILD)/gen/version.c
	$(CC) $(CFLAGS) $(SANFLAGS) -c $< -o $@

$(BUILD)/gen/web.c: $(WEB_FILES) scripts/embed-web.sh
	@mkdir -p $(dir $@)
	scripts/embed-web.sh $(WEB_FILES) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/web.o: $(BUILD)/gen/web.c src/http/web_files.h
	$(CC) $(CFLAGS) $(SANFLAGS) -Isrc -c $< -o $@

$(BUILD)/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) -c $< -o $@

# the Winograd kernels keep their register tiles only when optimized: -O2 in
# sanitizer builds too (still instrumented), else inference there is 40 x slower
$(BUILD)/src/nn/wino.o: OPT = -O2

# made anew each time, so that a removed source leaves nothing behind
$(BUILD)/libpetcut.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/petcut: $(CLI_OBJ) $(BUILD)/libpetcut.a
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -fopenmp -o $@ $(CLI_OBJ) $(BUILD)/libpetcut.a $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libpetcut.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) -o $@ $< $(BUILD)/libpetcut.a $(LDLIBS_ALL)

# the CLI's argument parser, beside the API's
$(BUILD)/tests/test_pipeline: tests/unit/test_pipeline.c $(BUILD)/src/cli/cmd_remove.o $(BUILD)/src/cli/args.o $(BUILD)/libpetcut.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) -o $@ $< $(BUILD)/src/cli/cmd_remove.o $(BUILD)/src/cli/args.o $(BUILD)/libpetcut.a $(LDLIBS_ALL)

$(BUILD)/tests/test_fuzz_%: fuzz/%_fuzzer.c fuzz/replay.c $(BUILD)/libpetcut.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) -DREPLAY_CORPUS='"fuzz/corpus/$*"' -o $@ fuzz/$*_fuzzer.c fuzz/replay.c $(BUILD)/libpetcut.a $(LDLIBS_ALL)

# `make print-NAME` prints a variable (fuzz/run.sh links with PKGS).
print-%: FORCE
	$(info $($*))@:

# Runs every fuzz target with libFuzzer for FUZZ_SECONDS each.
FUZZ_SECONDS ?= 120
fuzz: deps
	@fuzz/run.sh $(FUZZ_SECONDS)

# Mixed load (hits, uploads, thumbnails, previews, renders) on 200 keep-alive
# connections for SOAK_MINUTES; fails on any error or RSS growth over 50 MB.
SOAK_MINUTES ?= 30
soak: models
	@python3 tests/load/soak.py $(BUILD)/petcut samples/chelsea.jpg --connections 200 \
		--minutes $(SOAK_MINUTES) --max-growth-mb 50 --report $(BUILD)/soak.md

# Installs the Debian packages petcut needs (only those missing).
deps:
	@scripts/install-deps.sh

# Fetches the default models into $$PETCUT_MODELS (idempotent).
models: deps
	@$(MAKE) --no-print-directory all
	@$(BUILD)/petcut model fetch

run: models
	@scripts/run-sample.sh $(BUILD)/petcut

test: models
	@scripts/test-setup.sh $(BUILD)
	@tests/run.sh $(BUILD)

bench: models
	@scripts/test-setup.sh build
	@bench/run.sh build

# Man pages, from the --help texts (scripts/man.sh).
man: $(BUILD)/petcut
	@scripts/man.sh $(BUILD)/petcut $(BUILD)/man

PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
MAN1DIR = $(PREFIX)/share/man/man1
UNITDIR = $(PREFIX)/lib/systemd/system
COMPLETIONDIR = $(PREFIX)/share/bash-completion/completions
UNITS = petcut.service petcut-worker.service

# The web assets (demo page, upload module) are built into the binary.
install: $(BUILD)/petcut man
	install -D -m 0755 $(BUILD)/petcut $(DESTDIR)$(BINDIR)/petcut
	install -d $(DESTDIR)$(MAN1DIR) $(DESTDIR)$(UNITDIR)
	install -m 0644 $(BUILD)/man/*.1 $(DESTDIR)$(MAN1DIR)/
	for u in $(UNITS); do \
		sed 's|/usr/bin/petcut|$(BINDIR)/petcut|' dist/systemd/$$u >$(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -D -m 0644 dist/bash-completion/petcut $(DESTDIR)$(COMPLETIONDIR)/petcut

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/petcut $(DESTDIR)$(MAN1DIR)/petcut.1 $(DESTDIR)$(MAN1DIR)/petcut-*.1 \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) $(DESTDIR)$(COMPLETIONDIR)/petcut

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
