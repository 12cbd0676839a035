# perception_ws: set-up, checks and runs. `make test` and `make demo` work on a fresh Debian 12 machine
# with Python 3.11; each step leaves a stamp file, so a second run skips what is done.
#
#   make venv        .venv with torch (CPU), the project (editable) and the ROS 2 wheels
#   make interfaces  build msg/ into .interfaces/ and make `perception_ws.msg` importable (and tf2_msgs
#                    from interfaces/ when no ROS 2 install provides it)
#   make lint        ruff check, ruff format --check, mypy
#   make test        all of the above, then the test suite (DDS confined to this machine)
#   make demo        the live graph on simulated data (simulator -> perception -> fusion), recorded
#   make bench       every benchmarks/bench_*.py
#   make clean       remove build products (keeps .venv); `make distclean` removes .venv too

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch lies on this kind of machine; asking for it first keeps pip from fetching a CUDA build.
TORCH := torch==2.13.0
EXTRAS := sim,carla,ros,ros-build,onnx,sparse,dev
# Debian packages the Python wheels need at run time (Open3D loads libusb).
APT_PACKAGES := libusb-1.0-0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Every ROS 2 process started from here stays on loopback (see perception_ws/ros_env.py).
LOCAL_DDS := $(BIN)/python -m perception_ws.ros_env
PYTEST_ARGS ?= -n 2

VENV_STAMP := $(VENV)/.perception-venv.stamp
INTERFACES_STAMP := .interfaces/.stamp

.PHONY: all venv interfaces lint test demo bench clean distclean
all: test

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "apt-get install$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

interfaces: $(INTERFACES_STAMP)

$(INTERFACES_STAMP): $(VENV_STAMP) $(wildcard msg/*.msg) CMakeLists.txt package.xml \
		$(wildcard interfaces/*/msg/*.msg interfaces/*/CMakeLists.txt interfaces/*/package.xml) \
		scripts/build_interfaces.sh scripts/pip_wheels_fixups.cmake
	scripts/build_interfaces.sh $(VENV) .interfaces
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy perception_ws

test: venv interfaces lint
	$(LOCAL_DDS) $(BIN)/pytest $(PYTEST_ARGS)

demo: venv interfaces
	$(LOCAL_DDS) $(BIN)/perception demo

bench: venv interfaces
	@set -e; found=0; for script in benchmarks/bench_*.py; do \
		[ -e "$$script" ] || continue; found=1; \
		echo "== $$script"; $(LOCAL_DDS) $(BIN)/python "$$script"; \
	done; [ $$found = 1 ] || echo "no benchmarks/bench_*.py yet"

clean:
	rm -rf .interfaces build install log .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -f $(VENV)/lib/python*/site-packages/perception_ws.pkg

distclean: clean
	rm -rf $(VENV)
