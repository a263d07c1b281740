# corun: thin wrapper over CMake, busted and the bench suite.
#   make run     install what is missing, build, run examples/bread.lua
#   make test    install what is missing, build (plain and ASan+UBSan), run
#                every test; ends with "N passed, M failed"
#   make bench   the benchmark table (bench/README.md); installs Debian's
#                nodejs first if there is no node (a column of the table)
#   make install install corun into /usr/local (module, Lua files, runner)

DEBS := cmake make gcc pkg-config git lua5.4 liblua5.4-dev libuv1-dev \
        lua-busted luarocks valgrind python3 clang libclang-rt-14-dev \
        libhiredis-dev redis-server
BUILD ?= build
JOBS ?= 2

.PHONY: all deps bench-deps build build-asan run test bench install clean

all: build

deps:
	@missing=$$(for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCORUN_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)

run: build
	$(BUILD)/bin/corun examples/bread.lua

test: build build-asan
	@bash test/run.sh

# What only the bench needs (not make test): node for the node column.
bench-deps:
	@command -v node >/dev/null 2>&1 || { \
	  echo "installing: nodejs"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs >/dev/null; \
	}

bench: build bench-deps
	python3 bench/run.py

install: build
	cmake --install $(BUILD)

clean:
	rm -rf build build-asan build-tsan build-fuzz build.luarocks
