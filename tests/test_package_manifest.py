"""package.xml names every ROS package the Python code imports, and CMakeLists.txt registers the tests for
`colcon test` (issue 13 item 6)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # the repository's own manifest, not untrusted input

from tests.helpers.data import REPO

#: ROS packages imported at run time (message packages, rclpy, launch) as `import X` / `from X... import`.
_ROS_IMPORT = re.compile(r"^\s*(?:from|import)\s+(\w+_msgs|rclpy|launch_ros|launch|ament_index_python)\b", re.M)


def _depends(*tags: str) -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {(e.text or "").strip() for tag in tags for e in root.iter(tag)}


def test_every_ros_package_the_code_imports_is_an_exec_depend() -> None:
    imported = {
        match
        for path in (REPO / "perception_ws").rglob("*.py")
        for match in _ROS_IMPORT.findall(path.read_text(encoding="utf-8"))
    }
    assert {"rclpy", "sensor_msgs", "tf2_msgs", "rosgraph_msgs", "ament_index_python"} <= imported  # the scan works
    missing = imported - _depends("exec_depend", "depend")
    assert not missing, f"package.xml lacks <exec_depend> for {sorted(missing)}"


def test_colcon_test_runs_the_pytest_suite() -> None:
    assert "ament_cmake_pytest" in _depends("test_depend")
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    testing = cmake[cmake.index("if(BUILD_TESTING)") :]
    assert re.search(r"find_package\(ament_cmake_pytest REQUIRED\)", testing)
    assert re.search(r"ament_add_pytest_test\(\w+ tests\b", testing)
