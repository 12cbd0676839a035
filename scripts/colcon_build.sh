#!/usr/bin/env bash
# Build the whole ROS 2 package (interfaces, Python package, node executables, launch/ and config/) with
# colcon against the ROS 2 wheels of a venv, as `colcon build` does on a ROS 2 machine. CI runs it through
# tests/test_colcon_build.py so that the colcon build cannot rot where no ROS 2 install exists.
#
#   scripts/colcon_build.sh [VENV [OUT]]     (defaults: .venv beside this repository and a new temp folder)
#
# Everything colcon writes (build/, install/, log/) goes under OUT, never into the source tree. The wheels
# lack ament_cmake_pytest, so the `colcon test` registration is left out (-DBUILD_TESTING=OFF); the same
# scripts/pip_wheels_fixups.cmake as scripts/build_interfaces.sh works around what the wheels get wrong.
# interfaces/ carries a COLCON_IGNORE: its stand-ins are not built here.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(realpath -m "${1:-$repo/.venv}")"
out="$(realpath -m "${2:-$(mktemp -d)}")"
python="$venv/bin/python"

if [[ ! -x "$venv/bin/colcon" ]]; then
  echo "colcon_build: no colcon in $venv/bin; install the dev extras (pip install -e '.[dev]')" >&2
  exit 1
fi

# As scripts/build_interfaces.sh: ament's share/ and lib/ lie in the venv prefix; the generators run its Python.
export AMENT_PREFIX_PATH="$venv"
export CMAKE_PREFIX_PATH="$venv"
export PATH="$venv/bin:$PATH"
export COLCON_HOME="$out/colcon_home"  # no user-wide colcon defaults or mixins change this build

"$venv/bin/colcon" --log-base "$out/log" build \
  --base-paths "$repo" \
  --build-base "$out/build" \
  --install-base "$out/install" \
  --event-handlers console_direct- \
  --cmake-args \
  -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE=Release \
  -DPython3_EXECUTABLE="$python" \
  "-DCMAKE_INSTALL_RPATH=$out/install/perception_ws/lib;$venv/lib" \
  "-DCMAKE_PROJECT_perception_ws_INCLUDE=$repo/scripts/pip_wheels_fixups.cmake"
echo "colcon_build: installed into $out/install (source $out/install/local_setup.bash)"
