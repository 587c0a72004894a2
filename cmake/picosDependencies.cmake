# picosDependencies.cmake — imported targets for the libraries libpicos links.
#
# Used twice: by the source tree (included from the root CMakeLists.txt) and,
# installed next to picosConfig.cmake, by find_package(picos) so that the
# exported static library's link interface ($<LINK_ONLY:picos::ev>, ...)
# resolves in the consumer's project too. Each target is defined only once.
#
#   picos::ev          libev (Debian's libev-dev ships no pkg-config file)
#   picos::protobuf-c  libprotobuf-c (pkg-config, with a plain search fallback)
#   picos::wolfssl     wolfSSL (pkg-config; Debian: libwolfssl-dev)
#   picos::zmq         libzmq (pkg-config; Debian: libzmq3-dev)
#   picos::sodium      libsodium (pkg-config; Debian: libsodium-dev)
#   picos::zlib        zlib, the registry log's CRC-32 (Debian: zlib1g-dev)
#   picos::seccomp     libseccomp, picos-worker's syscall filter (Debian:
#                      libseccomp-dev)

if(NOT TARGET picos::ev)
    find_path(PICOS_EV_INCLUDE_DIR ev.h PATH_SUFFIXES libev)
    find_library(PICOS_EV_LIBRARY NAMES ev)
    if(NOT PICOS_EV_INCLUDE_DIR OR NOT PICOS_EV_LIBRARY)
        message(FATAL_ERROR
            "picos: libev not found (Debian: apt-get install libev-dev, "
            "or run `make deps`)")
    endif()
    add_library(picos::ev UNKNOWN IMPORTED)
    set_target_properties(picos::ev PROPERTIES
        IMPORTED_LOCATION "${PICOS_EV_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${PICOS_EV_INCLUDE_DIR}")
endif()

if(NOT TARGET picos::protobuf-c)
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
        pkg_check_modules(PICOS_PROTOBUF_C QUIET IMPORTED_TARGET libprotobuf-c)
    endif()
    add_library(picos::protobuf-c INTERFACE IMPORTED)
    if(PICOS_PROTOBUF_C_FOUND)
        target_link_libraries(picos::protobuf-c
            INTERFACE PkgConfig::PICOS_PROTOBUF_C)
    else()
        find_path(PICOS_PROTOBUF_C_INCLUDE_DIR protobuf-c/protobuf-c.h)
        find_library(PICOS_PROTOBUF_C_LIBRARY NAMES protobuf-c)
        if(NOT PICOS_PROTOBUF_C_INCLUDE_DIR OR NOT PICOS_PROTOBUF_C_LIBRARY)
            message(FATAL_ERROR
                "picos: libprotobuf-c not found (Debian: apt-get install "
                "libprotobuf-c-dev, or run `make deps`)")
        endif()
        target_include_directories(picos::protobuf-c
            INTERFACE "${PICOS_PROTOBUF_C_INCLUDE_DIR}")
        target_link_libraries(picos::protobuf-c
            INTERFACE "${PICOS_PROTOBUF_C_LIBRARY}")
    endif()
endif()

if(NOT TARGET picos::wolfssl)
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(PICOS_WOLFSSL QUIET IMPORTED_TARGET wolfssl)
    if(NOT PICOS_WOLFSSL_FOUND)
        message(FATAL_ERROR
            "picos: wolfSSL not found (Debian: apt-get install "
            "libwolfssl-dev, or run `make deps`)")
    endif()
    add_library(picos::wolfssl INTERFACE IMPORTED)
    target_link_libraries(picos::wolfssl INTERFACE PkgConfig::PICOS_WOLFSSL)
endif()

# picos_pkg_target(<target> <pkg-config module> <Debian package>): an
# imported target for a library that ships a pkg-config file.
macro(picos_pkg_target target module debpkg)
    if(NOT TARGET ${target})
        find_package(PkgConfig REQUIRED)
        string(MAKE_C_IDENTIFIER "PICOS_PKG_${module}" _picos_var)
        pkg_check_modules(${_picos_var} QUIET IMPORTED_TARGET ${module})
        if(NOT ${_picos_var}_FOUND)
            message(FATAL_ERROR
                "picos: ${module} not found (Debian: apt-get install "
                "${debpkg}, or run `make deps`)")
        endif()
        add_library(${target} INTERFACE IMPORTED)
        target_link_libraries(${target} INTERFACE PkgConfig::${_picos_var})
    endif()
endmacro()

picos_pkg_target(picos::zmq libzmq libzmq3-dev)
picos_pkg_target(picos::sodium libsodium libsodium-dev)
picos_pkg_target(picos::zlib zlib zlib1g-dev)
# Only picos-worker (apps/worker/) and its test use libseccomp; libpicos does
# not, so an installed picos's users (PICOS_BUILD_APPS undefined) need not
# have it.
if(PICOS_BUILD_APPS OR PICOS_BUILD_TESTS)
    picos_pkg_target(picos::seccomp libseccomp libseccomp-dev)
endif()
