# corun: thin wrapper over CMake, busted and the bench suite.
#   make run     install what is missing, build, run examples/bread.lua
#   make test    install what is missing, build (plain and ASan+UBSan), run
#                every test; ends with "N passed, M failed"
#   make bench   the benchmark table (bench/README.md); installs Debian's
#                nodejs and wrk first if there is no node (a column of the
#                table) or wrk (the http row)
#   make install install corun (module, Lua files, runner) into PREFIX
#                (default /usr/local): make install PREFIX=$$HOME/.local
#   make build   build only (installs nothing; `make deps` installs the
#                Debian packages that run and test need)
#   make dist    corun-scm-1.tar.gz (the source tarball the rockspec's
#                source.url names) and corun-scm-1.src.rock

DEBS := cmake make gcc pkg-config git lua5.4 liblua5.4-dev libuv1-dev \
        lua-busted luarocks valgrind python3 clang libclang-rt-14-dev \
        libhiredis-dev redis-server lua-socket lua-sec libssl-dev \
        libcurl4-openssl-dev libhttp-parser-dev curl openssl lua-cjson
BUILD ?= build
JOBS ?= 2
PREFIX ?= /usr/local
# Configure quietly, but show warnings and errors.
CMAKE_CONFIGURE = cmake --log-level=WARNING -S .

.PHONY: all deps bench-deps build build-asan build-noredis run test bench install dist clean

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

build:
	@$(CMAKE_CONFIGURE) -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	@cmake --build $(BUILD) -j$(JOBS)

build-asan:
	@$(CMAKE_CONFIGURE) -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCORUN_SANITIZE=ON
	@cmake --build build-asan -j$(JOBS)

# corun without the Redis client (what a machine without hiredis builds).
build-noredis:
	@$(CMAKE_CONFIGURE) -B build-noredis -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORUN_REDIS=OFF
	@cmake --build build-noredis -j$(JOBS)

run: deps
	@$(MAKE) --no-print-directory build
	$(BUILD)/bin/corun examples/bread.lua

test: deps
	@$(MAKE) --no-print-directory build build-asan build-noredis
	@bash test/run.sh

# What only the bench needs (not make test): node for the node column,
# wrk for the http row.
bench-deps:
	@missing=$$(command -v node >/dev/null 2>&1 || echo nodejs; \
	  command -v wrk >/dev/null 2>&1 || echo wrk); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

bench: deps bench-deps
	@$(MAKE) --no-print-directory build
	python3 bench/run.py

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# The source tarball corun-scm-1.rockspec's source.url names (the checkout's
# tracked and new, not ignored, files under corun/) and the source rock
# (a zip of the rockspec and that tarball, what `luarocks pack` makes; pack
# itself wants an absolute source.url). DIST_DIR puts them elsewhere.
DIST_DIR ?= .
dist:
	@git ls-files -co --exclude-standard | grep -v -e '^\.ci/' -e '\.tar\.gz$$' -e '\.rock$$' | \
	  tar -czf $(DIST_DIR)/corun-scm-1.tar.gz --transform 's,^,corun/,' -T -
	@cp corun-scm-1.rockspec $(DIST_DIR)/corun-scm-1.rockspec.tmp
	@cd $(DIST_DIR) && python3 -c 'import zipfile; z = zipfile.ZipFile("corun-scm-1.src.rock", "w", zipfile.ZIP_DEFLATED); z.write("corun-scm-1.rockspec.tmp", "corun-scm-1.rockspec"); z.write("corun-scm-1.tar.gz"); z.close()'
	@rm -f $(DIST_DIR)/corun-scm-1.rockspec.tmp
	@echo "$(DIST_DIR)/corun-scm-1.tar.gz $(DIST_DIR)/corun-scm-1.src.rock"

clean:
	rm -rf build build-asan build-tsan build-fuzz build.luarocks
