#!/usr/bin/env bash
# Build the ROS 2 interfaces in msg/ with the ROS 2 wheels from PyPI (no ROS install needed), install them
# into .interfaces/install and make them importable from the venv as `perception_ws.msg`. Then build the
# stand-in message packages of interfaces/ (tf2_msgs, vision_msgs) that the venv cannot import already (see below).
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

# build_package SOURCE BUILD PREFIX PROJECT [CMAKE_ARGS...]: configure, build and install one interface
# package against the wheels, with the fix-ups and the RUNPATH described above.
build_package() {
  local source="$1" build="$2" install="$3" project="$4"
  shift 4
  cmake -S "$source" -B "$build" \
    -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$venv" \
    -DPython3_EXECUTABLE="$python" \
    -DCMAKE_INSTALL_PREFIX="$install" \
    "-DCMAKE_INSTALL_RPATH=$install/lib;$venv/lib" \
    "-DCMAKE_PROJECT_${project}_INCLUDE=$repo/scripts/pip_wheels_fixups.cmake" \
    "$@"
  cmake --build "$build" --parallel "$(nproc)"
  cmake --install "$build"
}

build_package "$repo" "$out/build" "$prefix" perception_ws -DPERCEPTION_WS_INTERFACES_ONLY=ON

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

# Stand-ins for message packages the wheels lack (interfaces/README.md), each built only when the venv
# cannot import the real one (a ROS 2 install provides it: nothing is built there). A stand-in built
# earlier (here or by another checkout sharing the venv; it carries a marker file) does not count as the
# real one: it is rebuilt here. Its site-packages folder is named in a .pth file of the venv, so
# `import tf2_msgs` works like any installed package.
marker=".perception_ws_stand_in"
for package in tf2_msgs vision_msgs; do
  stand_in="$out/$package"
  found="$(cd / && "$python" -c "import $package.msg, os; print(os.path.dirname($package.__file__))" 2>/dev/null || true)"
  if [[ -n "$found" && ! -e "$found/$marker" ]]; then
    echo "build_interfaces: $package found at $found; not building the stand-in"
    rm -f "$site/perception_ws_$package.pth"
    continue
  fi
  build_package "$repo/interfaces/$package" "$stand_in/build" "$stand_in/install" "$package"
  packages="$stand_in/install/lib/python$version/site-packages"
  touch "$packages/$package/$marker"
  echo "$packages" > "$site/perception_ws_$package.pth"
  (cd / && "$python" -c "from $package.msg import *")
  echo "build_interfaces: $package ready (stand-in in $stand_in/install)"
done
