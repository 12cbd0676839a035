#!/usr/bin/env bash
# Build the ROS 2 interfaces in msg/ with the ROS 2 wheels from PyPI (no ROS install needed), install them
# into .interfaces/install and make them importable from the venv as `perception_ws.msg`.
#
#   scripts/build_interfaces.sh [VENV [OUT]]     (defaults: .venv and .interfaces beside this repository)
#
# It runs the repository's own CMakeLists.txt with PERCEPTION_WS_INTERFACES_ONLY=ON (the generated C, C++
# and Python code, nothing else), plus scripts/pip_wheels_fixups.cmake for what the wheels get wrong.
# The generated Python package lands in OUT/install/lib/pythonX.Y/site-packages/perception_ws; a
# `perception_ws.pkg` file in the venv's site-packages names that folder, and perception_ws/__init__.py
# (pkgutil.extend_path) adds it to the source package's path. Shared libraries are found through the
# RUNPATH set here, so nobody needs LD_LIBRARY_PATH.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(realpath -m "${1:-$repo/.venv}")"
out="$(realpath -m "${2:-$repo/.interfaces}")"
python="$venv/bin/python"
prefix="$out/install"

if [[ ! -x "$python" ]]; then
  echo "build_interfaces: no Python at $python; create the venv first (make venv)" >&2
  exit 1
fi

# The wheels install ament's share/ and lib/ into the venv prefix; the generators run the venv's Python.
export AMENT_PREFIX_PATH="$venv"
export PATH="$venv/bin:$PATH"

cmake -S "$repo" -B "$out/build" \
  -DPERCEPTION_WS_INTERFACES_ONLY=ON \
  -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$venv" \
  -DPython3_EXECUTABLE="$python" \
  -DCMAKE_INSTALL_PREFIX="$prefix" \
  "-DCMAKE_INSTALL_RPATH=$prefix/lib;$venv/lib" \
  -DCMAKE_PROJECT_perception_ws_INCLUDE="$repo/scripts/pip_wheels_fixups.cmake"
cmake --build "$out/build" --parallel "$(nproc)"
cmake --install "$out/build"

site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
generated="$prefix/lib/python$version/site-packages/perception_ws"
if [[ ! -f "$generated/msg/__init__.py" ]]; then
  echo "build_interfaces: the generated package is not at $generated" >&2
  exit 1
fi
echo "$generated" > "$site/perception_ws.pkg"

# Smoke test from outside the repository, so only the venv's view of perception_ws counts.
(cd / && "$python" -c 'from perception_ws.msg import Detection3DArray, TrackArray; Detection3DArray(); TrackArray()')
echo "build_interfaces: perception_ws.msg ready ($generated)"
