# Fix-ups for building the interfaces against the ROS 2 wheels from PyPI (not needed with a real ROS 2
# install). scripts/build_interfaces.sh passes this file as CMAKE_PROJECT_<name>_INCLUDE of each package it
# builds (perception_ws, and the stand-ins of interfaces/ such as tf2_msgs), so it runs right after
# project(); the work is deferred to the end of the top-level CMakeLists, when every target
# and imported target exists, and before CMake checks them at generate time.
#
# 1. The wheels were built in a manylinux container: the exported *__rosidl_generator_py targets of the
#    message packages we depend on (std_msgs, geometry_msgs, ...) list that container's Python and NumPy
#    include folders (/opt/python/...), which do not exist here, and CMake refuses non-existent include
#    folders. They are dropped: the real ones come from find_package(Python3 ... NumPy) in
#    rosidl_generator_py and reach every Python extension through our own *__rosidl_generator_py target.
# 2. Our venv (and so the NumPy headers) lies inside the source tree, and CMake refuses to export include
#    folders inside the source tree. Nothing builds on top of these exports, so such folders are kept
#    for this build only ($<BUILD_INTERFACE:...>).
# 3. rclpy imports the extension perception_ws_s__rosidl_typesupport_c, whose dispatcher later dlopen()s
#    libperception_ws__rosidl_typesupport_fastrtps_c.so (or _introspection_c) by bare name. dlopen searches
#    LD_LIBRARY_PATH (which the wheels set to the venv's lib/ only), not our RUNPATH. So the extension is
#    linked to both libraries as well: they load with it, found through its RUNPATH, and the dispatcher's
#    dlopen() then finds them already loaded. No LD_LIBRARY_PATH needed.

function(_perception_ws_fix_imported_include_dirs)
  get_property(imported DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS imported)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(kept "")
    set(dropped "")
    foreach(dir IN LISTS dirs)
      # Generator expressions cannot be checked here; keep them as they are.
      if(dir MATCHES "^\\$<" OR EXISTS "${dir}")
        list(APPEND kept "${dir}")
      else()
        list(APPEND dropped "${dir}")
      endif()
    endforeach()
    if(dropped)
      set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${kept}")
      message(STATUS "pip wheels fix-up: ${target}: dropped missing include dirs ${dropped}")
    endif()
  endforeach()
endfunction()

function(_perception_ws_fix_exported_include_dirs)
  get_property(targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY BUILDSYSTEM_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "UTILITY")
      continue()
    endif()
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(fixed "")
    set(changed FALSE)
    foreach(dir IN LISTS dirs)
      string(FIND "${dir}" "${CMAKE_SOURCE_DIR}/" at)
      if(at EQUAL 0)
        list(APPEND fixed "$<BUILD_INTERFACE:${dir}>")
        set(changed TRUE)
      else()
        list(APPEND fixed "${dir}")
      endif()
    endforeach()
    if(changed)
      set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${fixed}")
    endif()
  endforeach()
endfunction()

function(_perception_ws_preload_typesupports)
  set(extension "${PROJECT_NAME}_s__rosidl_typesupport_c")
  if(NOT TARGET ${extension})
    message(FATAL_ERROR "pip wheels fix-up: no target ${extension}; did rosidl_generator_py change?")
  endif()
  foreach(impl rosidl_typesupport_fastrtps_c rosidl_typesupport_introspection_c)
    if(TARGET ${PROJECT_NAME}__${impl})
      target_link_libraries(${extension} PRIVATE ${PROJECT_NAME}__${impl})
    endif()
  endforeach()
  # Keep the dependency even though the extension uses no symbol of these libraries.
  target_link_options(${extension} PRIVATE "LINKER:--no-as-needed")
endfunction()

function(_perception_ws_pip_wheels_fixups)
  _perception_ws_fix_imported_include_dirs()
  _perception_ws_fix_exported_include_dirs()
  _perception_ws_preload_typesupports()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _perception_ws_pip_wheels_fixups)
