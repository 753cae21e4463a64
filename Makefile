# vshare: top-level build. `make help` lists the targets.
#
# Two builds of every C program: build/rel (-O2, what goes into guests and
# benchmarks) and build/san (ASan+UBSan, what the tests run on the host).

CC       ?= gcc
CLANG    ?= clang
PKGS     := glib-2.0 gio-2.0 json-glib-1.0
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# the host side only: the guest agent never links libvirt
LIBVIRT_CFLAGS := $(shell pkg-config --cflags libvirt 2>/dev/null)
LIBVIRT_LIBS   := $(shell pkg-config --libs libvirt 2>/dev/null)
# the migration hook only (host-shim/hook): libxml2 rewrites domain XML
XML_CFLAGS := $(shell pkg-config --cflags libxml-2.0 2>/dev/null)
XML_LIBS   := $(shell pkg-config --libs libxml-2.0 2>/dev/null)
# the policy engine (vshared only)
LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null)
WARN     := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
            -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS := -D_GNU_SOURCE -Iprotocol -Ibuild/gen -Iagent -Ihost-shim/lib \
            -Ihost-shim/cli -Ihost-shim/policy -Ihost-shim/plesim \
            -Ihost-shim/hook
BASE     := -std=gnu11 $(WARN) $(CPPFLAGS) $(PKG_CFLAGS) $(LIBVIRT_CFLAGS) \
            $(LUA_CFLAGS) $(XML_CFLAGS)
REL      := -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
REL_LD   := -Wl,-z,relro -Wl,-z,now
SAN      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=all

PROTO_SRC := protocol/cpuset.c protocol/framer.c protocol/message.c \
             protocol/dispatch.c protocol/util.c build/gen/vs-schema.c
AGENT_SRC := agent/main.c agent/channel.c agent/commands.c agent/cgroup.c \
             agent/cgroup-fs.c agent/cgroup-systemd.c agent/sysinfo.c agent/alloc.c
HOSTLIB_SRC := $(wildcard host-shim/lib/*.c)
CLI_SRC   := $(wildcard host-shim/cli/*.c)
POLICY_SRC := $(wildcard host-shim/policy/*.c) build/gen/policy-prelude.c
# the one lib file the policy engine's tests need (its metrics' writer)
PROM_SRC  := host-shim/lib/prom.c
# libplesim (the PLE model, docs/ple.md); vshare-plesim.c is its CLI
PLESIM_SRC := $(filter-out %/vshare-plesim.c,$(wildcard host-shim/plesim/*.c))
DAEMON_SRC := $(wildcard host-shim/daemon/*.c) build/gen/vs-host-schema.c \
              $(POLICY_SRC)
SHIM_SRC  := $(CLI_SRC) $(HOSTLIB_SRC) $(PLESIM_SRC)
HDRS      := $(wildcard protocol/*.h agent/*.h host-shim/*/*.h)

.PHONY: rebase-check all help check demo demo-agent bench bench-kernel kernel deb install fuzz format format-check docs clean setup \
        run-check run-demo run-bench

all: build/rel/vshare-agent build/san/vshare-agent build/san/test-protocol \
     build/san/test-host build/san/test-profile build/rel/vshared \
     build/san/vshared \
     build/san/test-libvirt-xml build/san/drvtest build/san/test-policy \
     build/san/test-layout build/rel/bench-policy \
     build/rel/libvshare-proto.a build/rel/vsharectl build/san/vsharectl \
     build/rel/vshare-plesim build/san/vshare-plesim build/san/test-plesim \
     build/rel/vshare-libvirt-hook build/san/vshare-libvirt-hook \
     build/san/test-migxml

help:
	@echo "make setup   install the Debian packages (root)"
	@echo "make demo    the main job: guest A lends node 1 (vCPU + memory) to guest B and back, via vsharectl"
	@echo "make check   every test (TAP through prove)"
	@echo "make bench   BENCH lines: take-away/give-back vs qemu-ga (busybox and systemd guests), RSS, idle wake-ups, lend vs hotplug"
	@echo "make fuzz    a long libFuzzer run of the frame/JSON/argument parser"
	@echo "make kernel  the guest kernel series applied, stock and patched bzImage"
	@echo "make rebase-check  both kernel series tried on the newest linux-source-6.1 in the archive"
	@echo "make bench-kernel  stock vs patched guest kernel, in-guest workloads"

setup:
	tests/setup-host.sh

build/gen/vs-schema.c: protocol/schema.json protocol/gen-schema.py
	@mkdir -p $(@D)
	python3 protocol/gen-schema.py c $< $@

build/gen/vs-host-schema.c: host-shim/daemon/schema.json protocol/gen-schema.py
	@mkdir -p $(@D)
	python3 protocol/gen-schema.py c $< $@ vs_host

build/gen/policy-prelude.c: host-shim/policy/prelude.lua host-shim/policy/embed.py
	@mkdir -p $(@D)
	python3 host-shim/policy/embed.py $< $@ vs_policy_prelude

docs/protocol.md: protocol/schema.json protocol/gen-schema.py
	python3 protocol/gen-schema.py md $< $@

docs: docs/protocol.md

build/rel/%.o: %.c $(HDRS) | build/gen/vs-schema.c build/gen/vs-host-schema.c build/gen/policy-prelude.c
	@mkdir -p $(@D)
	$(CC) $(BASE) $(REL) -c $< -o $@

build/san/%.o: %.c $(HDRS) | build/gen/vs-schema.c build/gen/vs-host-schema.c build/gen/policy-prelude.c
	@mkdir -p $(@D)
	$(CC) $(BASE) $(SAN) -c $< -o $@

build/rel/libvshare-proto.a: $(PROTO_SRC:%.c=build/rel/%.o)
	ar rcs $@ $^

build/rel/vshare-agent: $(AGENT_SRC:%.c=build/rel/%.o) $(PROTO_SRC:%.c=build/rel/%.o)
	$(CC) $(REL) $(REL_LD) -o $@ $^ $(PKG_LIBS)

build/san/vshare-agent: $(AGENT_SRC:%.c=build/san/%.o) $(PROTO_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

build/rel/vsharectl: $(SHIM_SRC:%.c=build/rel/%.o) $(PROTO_SRC:%.c=build/rel/%.o)
	$(CC) $(REL) $(REL_LD) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS) -lm

build/san/vsharectl: $(SHIM_SRC:%.c=build/san/%.o) $(PROTO_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS) -lm

build/rel/vshare-plesim: $(PLESIM_SRC:%.c=build/rel/%.o) build/rel/host-shim/plesim/vshare-plesim.o build/rel/build/gen/vs-schema.o
	$(CC) $(REL) $(REL_LD) -o $@ $^ $(PKG_LIBS) -lm

build/san/vshare-plesim: $(PLESIM_SRC:%.c=build/san/%.o) build/san/host-shim/plesim/vshare-plesim.o build/san/build/gen/vs-schema.o
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) -lm

build/san/test-plesim: build/san/tests/unit/test-plesim.o $(PLESIM_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) -lm

build/san/test-protocol: build/san/tests/unit/test-protocol.o $(PROTO_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

build/rel/vshared: $(DAEMON_SRC:%.c=build/rel/%.o) $(HOSTLIB_SRC:%.c=build/rel/%.o) $(PROTO_SRC:%.c=build/rel/%.o)
	$(CC) $(REL) $(REL_LD) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS) $(LUA_LIBS)

build/san/vshared: $(DAEMON_SRC:%.c=build/san/%.o) $(HOSTLIB_SRC:%.c=build/san/%.o) $(PROTO_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS) $(LUA_LIBS)

build/san/test-policy: build/san/tests/unit/test-policy.o $(POLICY_SRC:%.c=build/san/%.o) $(PROM_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) $(LUA_LIBS)

build/san/test-layout: build/san/tests/unit/test-layout.o $(POLICY_SRC:%.c=build/san/%.o) $(PROM_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) $(LUA_LIBS)

build/rel/bench-policy: build/rel/tests/unit/test-policy.o $(POLICY_SRC:%.c=build/rel/%.o) $(PROM_SRC:%.c=build/rel/%.o)
	$(CC) $(REL) $(REL_LD) -o $@ $^ $(PKG_LIBS) $(LUA_LIBS)

build/san/test-libvirt-xml: build/san/tests/unit/test-libvirt-xml.o $(HOSTLIB_SRC:%.c=build/san/%.o) $(PROTO_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS)

build/san/drvtest: build/san/tests/libvirt/drvtest.o $(HOSTLIB_SRC:%.c=build/san/%.o) $(PROTO_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS)

HOOK_SRC := host-shim/hook/migxml.c
build/rel/vshare-libvirt-hook: build/rel/host-shim/hook/vshare-libvirt-hook.o $(HOOK_SRC:%.c=build/rel/%.o) $(HOSTLIB_SRC:%.c=build/rel/%.o) $(PROTO_SRC:%.c=build/rel/%.o)
	$(CC) $(REL) $(REL_LD) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS) $(XML_LIBS)

build/san/vshare-libvirt-hook: build/san/host-shim/hook/vshare-libvirt-hook.o $(HOOK_SRC:%.c=build/san/%.o) $(HOSTLIB_SRC:%.c=build/san/%.o) $(PROTO_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS) $(XML_LIBS)

build/san/test-migxml: build/san/tests/unit/test-migxml.o $(HOOK_SRC:%.c=build/san/%.o) $(HOSTLIB_SRC:%.c=build/san/%.o) $(PROTO_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS) $(XML_LIBS)

build/san/test-host: build/san/tests/unit/test-host.o $(HOSTLIB_SRC:%.c=build/san/%.o) $(PROTO_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS)

build/san/test-profile: build/san/tests/unit/test-profile.o $(HOSTLIB_SRC:%.c=build/san/%.o) $(PROTO_SRC:%.c=build/san/%.o)
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS) $(LIBVIRT_LIBS) -lm

build/fuzz/fuzz-proto: tests/fuzz/fuzz-proto.c $(PROTO_SRC) $(HDRS) build/gen/vs-schema.c
	@mkdir -p $(@D)
	$(CLANG) -std=gnu11 $(CPPFLAGS) $(PKG_CFLAGS) -g -O1 \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -o $@ tests/fuzz/fuzz-proto.c $(PROTO_SRC) $(PKG_LIBS)

build/fuzz/fuzz-host: tests/fuzz/fuzz-host.c $(HOSTLIB_SRC) $(PROTO_SRC) $(HDRS) build/gen/vs-schema.c
	@mkdir -p $(@D)
	$(CLANG) -std=gnu11 $(CPPFLAGS) $(PKG_CFLAGS) $(LIBVIRT_CFLAGS) -g -O1 \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -o $@ tests/fuzz/fuzz-host.c $(HOSTLIB_SRC) $(PROTO_SRC) $(PKG_LIBS) $(LIBVIRT_LIBS)

# vshared's decoders (control socket, peer endpoint): daemon/decode.c
build/fuzz/fuzz-daemon: tests/fuzz/fuzz-daemon.c host-shim/daemon/decode.c $(HOSTLIB_SRC) $(PROTO_SRC) $(HDRS) build/gen/vs-schema.c build/gen/vs-host-schema.c
	@mkdir -p $(@D)
	$(CLANG) -std=gnu11 $(CPPFLAGS) -Ihost-shim/daemon $(PKG_CFLAGS) $(LIBVIRT_CFLAGS) $(LUA_CFLAGS) -g -O1 \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -o $@ tests/fuzz/fuzz-daemon.c host-shim/daemon/decode.c build/gen/vs-host-schema.c \
	  $(HOSTLIB_SRC) $(PROTO_SRC) $(PKG_LIBS) $(LIBVIRT_LIBS)

# ---- tests -----------------------------------------------------------------
# Every test prints TAP; prove gives the summary line CI reads.
TESTS := build/san/test-protocol tests/unit/host.t build/san/test-libvirt-xml \
         build/san/test-migxml build/san/test-profile \
         build/san/test-policy build/san/test-layout \
         build/san/test-plesim tests/unit/plesim.t \
         tests/unit/protocol-docs.t tests/unit/vshared-config.t \
         tests/unit/fuzz-short.t tests/unit/format.t \
         tests/hostile/hostile.t tests/hostile/daemon.t tests/hostile/policy.t tests/hostile/clients.t \
         tests/hostile/files.t \
         tests/bench/smoke.t \
         tests/agent/agent-host.t tests/e2e/guest-v2.t tests/e2e/guest-v1.t \
         tests/unit/deb.t tests/install/install.t tests/image/image.t tests/shim/shim.t \
         tests/shim/migrate.t \
         tests/libvirt/libvirt.t tests/libvirt/guestvcpus.t \
         tests/libvirt/hook.t tests/libvirt/migrate.t \
         tests/policy/policy.t \
         tests/kernel/rebase.t tests/kernel/kernel.t tests/kernel/kvm-patch.t

# demo, check and bench first install what is missing (as root), then run
# in a sub-make that sees the installed pkg-config files.
check demo bench bench-kernel kernel:
	tests/setup-host.sh --if-needed
	$(MAKE) --no-print-directory run-$@

run-check: all build/fuzz/fuzz-proto build/fuzz/fuzz-host build/fuzz/fuzz-daemon build/rel/vsharectl
	prove -v -e '' $(TESTS)

run-demo: build/rel/vshare-agent build/rel/vsharectl
	tests/shim/demo.py

# the guest kernel, stock and patched (cached; guest-kernel/README)
run-kernel:
	$(MAKE) -C guest-kernel

run-bench-kernel: build/rel/vshare-agent
	tests/bench/bench-kernel.py

# both kernel series tried on the newest linux-source-6.1 in the archive
# (fetched into the cache, not installed): a rebase seen before it is forced
rebase-check:
	@guest-kernel/scripts/build.sh rebase-check; g=$$?; \
	host-shim/kvm-patches/scripts/build.sh rebase-check; k=$$?; \
	exit $$((g | k))

# the agent alone in one guest (the foundation's demo)
demo-agent: build/rel/vshare-agent
	tests/vm/vm demo

run-bench: build/rel/vshare-agent build/rel/vsharectl build/rel/vshared \
           build/rel/bench-policy build/rel/vshare-plesim \
           build/san/vsharectl build/san/vshared
	tests/bench/bench-hostile.py
	tests/bench/bench-policy.py
	tests/bench/bench-libvirt.py
	tests/bench/bench.py
	tests/bench/bench-vcpus.py
	tests/bench/bench-systemd.py
	tests/bench/bench-shim.py
	tests/bench/bench-plesim.py
	tests/bench/bench-layout.py
	tests/bench/bench-status.py
	tests/bench/soak.py
	tests/hostile/policy.py    # BENCH sigterm_with_hostile_policy_ms
	tests/libvirt/guestvcpus.py --bench

# ---- packaging ------------------------------------------------------------
# make deb: build/deb/vshare-agent_<version>_amd64.deb (the guest) and
# vshare-host_<version>_amd64.deb (vsharectl, vshared), from the debhelper
# source package in debian/ (packaging/README.md; lintian --pedantic
# clean). make install DESTDIR=... PREFIX=/usr for other distributions.
PREFIX ?= /usr/local
DESTDIR ?=
UNITDIR ?= $(PREFIX)/lib/systemd/system
UDEVDIR ?= $(PREFIX)/lib/udev/rules.d

deb: build/rel/vshare-agent build/rel/vsharectl build/rel/vshared build/rel/vshare-libvirt-hook
	packaging/deb/build.sh

install: build/rel/vshare-agent build/rel/vsharectl build/rel/vshared build/rel/vshare-libvirt-hook
	install -D -m 0755 build/rel/vshare-agent $(DESTDIR)$(PREFIX)/sbin/vshare-agent
	install -D -m 0755 build/rel/vsharectl $(DESTDIR)$(PREFIX)/sbin/vsharectl
	install -D -m 0755 build/rel/vshared $(DESTDIR)$(PREFIX)/sbin/vshared
	install -D -m 0644 host-shim/daemon/vshared.8 $(DESTDIR)$(PREFIX)/share/man/man8/vshared.8
	install -D -m 0644 host-shim/daemon/vshare.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/vshare.conf.5
	for f in vshared.conf host.conf policies.conf; do \
	  test -e $(DESTDIR)/etc/vshare/$$f || \
	  install -D -m 0644 host-shim/daemon/$$f $(DESTDIR)/etc/vshare/$$f; done
	install -D -m 0644 host-shim/daemon/peer-network.conf $(DESTDIR)$(PREFIX)/share/doc/vshare-host/examples/peer-network.conf
	install -D -m 0755 build/rel/vshare-libvirt-hook $(DESTDIR)$(PREFIX)/libexec/vshare/vshare-libvirt-hook
	mkdir -p $(DESTDIR)/etc/libvirt/hooks/qemu.d
	ln -sf $(PREFIX)/libexec/vshare/vshare-libvirt-hook $(DESTDIR)/etc/libvirt/hooks/qemu.d/vshare
	for f in host-shim/policies/*.lua; do \
	  install -D -m 0644 $$f $(DESTDIR)$(PREFIX)/share/vshare/policies/$$(basename $$f); done
	install -D -m 0644 host-shim/daemon/vshared.service $(DESTDIR)$(UNITDIR)/vshared.service
	# the binary looks for policies in /usr/share: elsewhere, tell it
	if [ "$(PREFIX)" = /usr ]; then :; else \
	  sed -i 's|^ExecStart=/usr/sbin/vshared$$|ExecStart=$(PREFIX)/sbin/vshared --policies $(PREFIX)/share/vshare/policies|' \
	    $(DESTDIR)$(UNITDIR)/vshared.service; fi
	install -D -m 0644 agent/vshare-agent.8 $(DESTDIR)$(PREFIX)/share/man/man8/vshare-agent.8
	install -D -m 0644 host-shim/vsharectl.8 $(DESTDIR)$(PREFIX)/share/man/man8/vsharectl.8
	install -D -m 0644 agent/systemd/vshare-agent.service $(DESTDIR)$(UNITDIR)/vshare-agent.service
	install -D -m 0644 agent/udev/60-vshare-agent.rules $(DESTDIR)$(UDEVDIR)/60-vshare-agent.rules
	install -D -m 0644 agent/systemd/guest-vcpus.conf $(DESTDIR)$(PREFIX)/share/doc/vshare-agent/examples/guest-vcpus.conf
	sed -i 's|/usr/sbin/vshare-agent|$(PREFIX)/sbin/vshare-agent|' $(DESTDIR)$(UNITDIR)/vshare-agent.service

# make fuzz: each target FUZZ_SECONDS (default 600); BENCH lines with the
# executions each ran (libFuzzer's final stats).
fuzz: build/fuzz/fuzz-proto build/fuzz/fuzz-host build/fuzz/fuzz-daemon
	tests/fuzz/run.sh $${FUZZ_SECONDS:-600}

format:
	clang-format -i $(wildcard protocol/*.[ch] agent/*.[ch] host-shim/*/*.[ch] tests/unit/*.c tests/fuzz/*.c tests/libvirt/*.c)

format-check:
	clang-format --dry-run -Werror $(wildcard protocol/*.[ch] agent/*.[ch] host-shim/*/*.[ch] tests/unit/*.c tests/fuzz/*.c tests/libvirt/*.c)

clean:
	rm -rf build
