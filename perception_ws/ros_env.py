"""Environment for ROS 2 processes that must stay on this machine: tests, the demo, benchmarks.

rclpy reads these variables when a context is initialised (and the RMW layer when it is first loaded), so
they must be in place before `rclpy.init()`: pass `local_dds_env()` as a child process's environment, or
call `apply_local_dds_env()` at the top of a program, or run a command under it:
`python -m perception_ws.ros_env pytest ...` (what `make test` does).

- ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST: discovery only talks to this machine.
- ROS_DOMAIN_ID: random in 1..101 (the range whose ports never collide with Linux ephemeral ports; 0, the
  default domain, is left to anything else running here), so parallel test runs do not see each other;
  PERCEPTION_ROS_DOMAIN_ID picks a fixed one instead, e.g. to watch a demo from another shell.
- ROS_LOG_DIR: a fresh temporary folder, so no run writes to ~/.ros/log; removed when the process that made it
  exits (normally, after an error, or after SIGINT/SIGTERM that the program handles), unless it asks to keep it.
- Fast DDS with config/fastdds_local.xml: shared memory sized for large point clouds, UDP on loopback only.

`perception replay`, `record` and `run` use the caller's ROS environment (`prepare_ros_env`): ROS_DOMAIN_ID,
ROS_AUTOMATIC_DISCOVERY_RANGE, ROS_LOG_DIR and the RMW settings as set. Only their `--local-dds` flag, or
PERCEPTION_LOCAL_DDS=1 in the environment (set by `local_dds_env`, so everything started under it stays local),
switches them to the loopback-only environment above.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from perception_ws.errors import PerceptionError

#: Environment variable that fixes the domain id instead of drawing a random one.
DOMAIN_ID_OVERRIDE = "PERCEPTION_ROS_DOMAIN_ID"
#: Domain ids drawn at random (inclusive).
DOMAIN_ID_RANGE = (1, 101)
#: Largest domain id whose DDS ports still fit below 65536 on Linux (the ROS 2 documentation's limit).
DOMAIN_ID_MAX = 232
#: File name of the Fast DDS profile, in the repository's config/ and in the installed share/perception_ws/config/.
PROFILE_NAME = "fastdds_local.xml"
#: The profile for a caller's graph (UDP on every interface; the launch file's default `dds_profile`).
GRAPH_PROFILE_NAME = "fastdds_graph.xml"
#: Environment variable that switches `perception replay/record/run` to the loopback-only environment ("1").
LOCAL_DDS_SWITCH = "PERCEPTION_LOCAL_DDS"
#: The variables Fast DDS reads its profile file from (3.x and ROS 2 Kilted; older releases).
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")

# Variables that could send discovery or data elsewhere than this machine; a local run drops them.
_NOT_LOCAL = ("ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY", "ROS_DISCOVERY_SERVER", "ROS_SUPER_CLIENT")


def fastdds_profile_path(name: str = PROFILE_NAME) -> Path:
    """A Fast DDS profile: config/ of the source tree, else share/perception_ws/config/ of a ROS install."""
    source_tree = Path(__file__).resolve().parent.parent / "config" / name
    if source_tree.is_file():
        return source_tree
    looked = [str(source_tree)]
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("perception_ws")) / "config" / name
    except (ImportError, LookupError, OSError):  # no ament index, or perception_ws not installed in one
        looked.append("share/perception_ws/config/ of the ament index (AMENT_PREFIX_PATH)")
    else:
        if installed.is_file():
            return installed
        looked.append(str(installed))
    raise FileNotFoundError(f"Fast DDS profile {name} not found; looked in: {'; '.join(looked)}")


#: lock files of the domain ids this process drew last (a few: a test may still use the previous one).
_RESERVED: deque[TextIO] = deque(maxlen=4)


def _reserve_random_domain() -> int:
    """A random domain id that no other process on this machine holds: each draw takes a lock file, so
    parallel test workers and demos never share a domain (a shared one lets their topics cross).
    """
    ids = list(range(DOMAIN_ID_RANGE[0], DOMAIN_ID_RANGE[1] + 1))
    random.shuffle(ids)
    for domain in ids:
        handle = open(Path(tempfile.gettempdir()) / f"perception_ros_domain_{domain}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        if len(_RESERVED) == _RESERVED.maxlen:
            _RESERVED[0].close()  # releases the oldest lock
        _RESERVED.append(handle)
        return domain
    return ids[0]  # every id held: share one rather than fail


def _domain_id(base: Mapping[str, str]) -> str:
    given = base.get(DOMAIN_ID_OVERRIDE, "").strip()
    if not given:
        return str(_reserve_random_domain())
    if not given.isdigit() or int(given) > DOMAIN_ID_MAX:
        raise PerceptionError(f"{DOMAIN_ID_OVERRIDE}={given!r}: expected an integer domain id in 0..{DOMAIN_ID_MAX}")
    return str(int(given))


def local_dds_env(base: Mapping[str, str] | None = None, *, keep_logs: bool = False) -> dict[str, str]:
    """A copy of `base` (default: os.environ) set up for a ROS 2 run confined to this machine.

    Every call draws a new domain id and makes a new log folder, which is removed when this process exits
    unless ``keep_logs`` (each `replay`, `record` and `run` left one in the temp folder before).
    """
    env = dict(os.environ if base is None else base)
    for name in _NOT_LOCAL:
        env.pop(name, None)
    profile = str(fastdds_profile_path())
    env.update(
        {
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "ROS_DOMAIN_ID": _domain_id(env),
            "ROS_LOG_DIR": _log_dir(keep_logs),
            "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
            _profile_variable(env): profile,
            LOCAL_DDS_SWITCH: "1",  # what this process starts (a `perception replay`, a graph) stays local too
        }
    )
    return env


def local_dds_requested(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``env`` (default: os.environ) asks for the loopback-only environment (PERCEPTION_LOCAL_DDS)."""
    value = (os.environ if env is None else env).get(LOCAL_DDS_SWITCH, "").strip()
    if value not in ("", "0", "1"):
        raise PerceptionError(f"{LOCAL_DDS_SWITCH}={value!r}: expected 1 (loopback-only DDS) or 0 / unset")
    return value == "1"


def caller_ros_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: os.environ) as the caller set it, checked, for a user's ROS 2 graph.

    Domain, discovery range, log folder and RMW are left as they are. Where the caller uses Fast DDS (the
    default RMW) and names no profile, the graph profile fills the gap, as under ``ros2 launch``: without
    its large shared-memory segment about half of the 120k-point scans were lost (issue 13).
    """
    env = dict(os.environ if base is None else base)
    domain = env.get("ROS_DOMAIN_ID", "").strip()
    if domain and (not domain.isdigit() or int(domain) > DOMAIN_ID_MAX):
        raise PerceptionError(f"ROS_DOMAIN_ID={domain!r}: expected an integer domain id in 0..{DOMAIN_ID_MAX}")
    fastdds = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") in ("", "rmw_fastrtps_cpp")
    if fastdds and not any(env.get(name) for name in PROFILE_VARIABLES):
        try:
            profile = str(fastdds_profile_path(GRAPH_PROFILE_NAME))
        except FileNotFoundError:  # an install without config/: Fast DDS's defaults, as the caller had them
            return env
        env.update(dict.fromkeys(PROFILE_VARIABLES, profile))  # both names, as the launch file sets them
    return env


def prepare_ros_env(local: bool) -> str:
    """Set os.environ for this process's ROS 2 context (call before `rclpy.init()`): the loopback-only
    environment where ``local`` or PERCEPTION_LOCAL_DDS=1 asks for it, else the caller's (`caller_ros_env`).
    Returns one line saying which, for the command's start-up output.
    """
    if local or local_dds_requested():
        apply_local_dds_env()
        os.environ[DOMAIN_ID_OVERRIDE] = os.environ["ROS_DOMAIN_ID"]  # what this process starts keeps the domain
        how = "loopback only"
    else:
        os.environ.update(caller_ros_env())
        how = "the caller's environment"
    domain = os.environ.get("ROS_DOMAIN_ID") or "0 (default)"
    logs = os.environ.get("ROS_LOG_DIR") or "~/.ros/log (default)"
    return f"ROS_DOMAIN_ID={domain} ({how}), logs in {logs}"


def _log_dir(keep: bool) -> str:
    """A fresh ROS log folder; unless ``keep``, removed at exit of this process (not of a forked child)."""
    folder = tempfile.mkdtemp(prefix="perception_ros_log_")
    if not keep:
        atexit.register(_remove_log_dir, folder, os.getpid())
    return folder


def _remove_log_dir(folder: str, creator: int) -> None:
    if os.getpid() == creator:  # a forked child inherits the handler but not the folder's ownership
        shutil.rmtree(folder, ignore_errors=True)


def _profile_variable(env: Mapping[str, str]) -> str:
    """Fast DDS 3 (ROS 2 Kilted and the pip wheels) reads FASTDDS_…; older releases only FASTRTPS_… ."""
    older = env.get("ROS_DISTRO", "") in ("humble", "iron", "jazzy")
    return "FASTRTPS_DEFAULT_PROFILES_FILE" if older else "FASTDDS_DEFAULT_PROFILES_FILE"


def shm_segment_bytes(env: Mapping[str, str] | None = None) -> int | None:
    """The shared-memory segment size of the Fast DDS profile ``env`` (default: os.environ) names; None where no
    profile is named or it sets none (Fast DDS then uses its defaults, which this project does not rely on).
    """
    import xml.etree.ElementTree as ET  # a local profile file, not untrusted input

    env = os.environ if env is None else env
    path = env.get("FASTDDS_DEFAULT_PROFILES_FILE") or env.get("FASTRTPS_DEFAULT_PROFILES_FILE")
    if not path:
        return None
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    sizes = [
        int(text)
        for descriptor in root.iter()
        if descriptor.tag.endswith("transport_descriptor")
        and any(c.tag.endswith("type") and (c.text or "").strip() == "SHM" for c in descriptor)
        for node in descriptor
        if node.tag.endswith("segment_size") and (text := (node.text or "").strip()).isdigit()
    ]
    return max(sizes) if sizes else None


def apply_local_dds_env() -> dict[str, str]:
    """Put `local_dds_env()` into os.environ (call before `rclpy.init()`); returns the variables it set."""
    env = local_dds_env()
    changed = {name: value for name, value in env.items() if os.environ.get(name) != value}
    for name in _NOT_LOCAL:
        os.environ.pop(name, None)
    os.environ.update(changed)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command with `local_dds_env()`; its log folder is removed afterwards unless the command failed."""
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print("usage: python -m perception_ws.ros_env COMMAND [ARG ...]", file=sys.stderr)
        return 2
    env = local_dds_env(keep_logs=True)  # kept when the command fails, for its logs
    try:
        code = subprocess.call(command, env=env)
    except KeyboardInterrupt:  # the command got the same Ctrl-C and has stopped
        code = 130
    if code == 0:
        shutil.rmtree(env["ROS_LOG_DIR"], ignore_errors=True)
    else:
        print(f"ros_env: {command[0]} exited with {code}; ROS logs in {env['ROS_LOG_DIR']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
