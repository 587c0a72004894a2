# picosProtobuf.cmake — run protoc-c at build time.
#
#   picos_protoc_c(<srcs_var> <hdrs_var>
#                  PROTOS <file.proto>...
#                  [PROTO_PATH <dir>]     # import root; default ${PROJECT_SOURCE_DIR}/proto
#                  [OUT_DIR <dir>])       # default ${PROJECT_BINARY_DIR}/proto
#
# For each <dir>/x/y.proto it generates <OUT_DIR>/x/y.pb-c.c and .pb-c.h and
# returns their paths, so a target lists ${srcs} among its sources and adds
# OUT_DIR to its include directories. Output never lands in the source tree.
# The compiler is PICOS_PROTOC_C (found by the root CMakeLists.txt).

function(picos_protoc_c out_srcs out_hdrs)
    cmake_parse_arguments(ARG "" "PROTO_PATH;OUT_DIR" "PROTOS" ${ARGN})
    if(NOT PICOS_PROTOC_C)
        message(FATAL_ERROR "picos_protoc_c: protoc-c not found "
            "(Debian: apt-get install protobuf-c-compiler)")
    endif()
    if(NOT ARG_PROTO_PATH)
        set(ARG_PROTO_PATH "${PROJECT_SOURCE_DIR}/proto")
    endif()
    if(NOT ARG_OUT_DIR)
        set(ARG_OUT_DIR "${PROJECT_BINARY_DIR}/proto")
    endif()
    get_filename_component(ARG_PROTO_PATH "${ARG_PROTO_PATH}" ABSOLUTE)
    set(srcs)
    set(hdrs)
    foreach(proto IN LISTS ARG_PROTOS)
        get_filename_component(abs "${proto}" ABSOLUTE)
        file(RELATIVE_PATH rel "${ARG_PROTO_PATH}" "${abs}")
        string(REGEX REPLACE "\\.proto$" "" stem "${rel}")
        set(c "${ARG_OUT_DIR}/${stem}.pb-c.c")
        set(h "${ARG_OUT_DIR}/${stem}.pb-c.h")
        add_custom_command(
            OUTPUT "${c}" "${h}"
            COMMAND "${CMAKE_COMMAND}" -E make_directory "${ARG_OUT_DIR}"
            COMMAND "${PICOS_PROTOC_C}" "--proto_path=${ARG_PROTO_PATH}"
                    "--c_out=${ARG_OUT_DIR}" "${abs}"
            DEPENDS "${abs}" "${PICOS_PROTOC_C}"
            COMMENT "protoc-c ${rel}"
            VERBATIM)
        list(APPEND srcs "${c}")
        list(APPEND hdrs "${h}")
    endforeach()
    set(${out_srcs} "${srcs}" PARENT_SCOPE)
    set(${out_hdrs} "${hdrs}" PARENT_SCOPE)
endfunction()
