# picosService.cmake — picos_add_service(), for service libraries that
# picos-node loads (include/picos/service.h, docs/node.md).
#
#   picos_add_service(<target> <source>...)
#
# Makes <target> a MODULE library (lib<target>.so) compiled with picos's
# headers and linked against nothing: picos-node exports picos's API (and
# has libprotobuf-c loaded) and the library resolves those symbols from it
# when it is loaded. Symbols are hidden by default, so only what
# PC_SERVICE_EXPORT() exports (picos_service_abi, picos_service_init)
# leaves the library, and no function of it can be mistaken for another
# library's. Included by the source tree's root CMakeLists.txt and by the
# installed picosConfig.cmake (find_package(picos) defines it).
function(picos_add_service target)
    if(NOT ARGN)
        message(FATAL_ERROR "picos_add_service(${target}): no sources given")
    endif()
    add_library(${target} MODULE ${ARGN})
    set_target_properties(${target} PROPERTIES
        C_VISIBILITY_PRESET hidden
        POSITION_INDEPENDENT_CODE ON)
    if(TARGET picos_static) # the source tree
        target_include_directories(${target} PRIVATE
            "$<TARGET_PROPERTY:picos_static,INTERFACE_INCLUDE_DIRECTORIES>")
    elseif(TARGET picos::picos) # an installed picos
        target_include_directories(${target} PRIVATE
            "$<TARGET_PROPERTY:picos::picos,INTERFACE_INCLUDE_DIRECTORIES>")
    endif()
endfunction()
