# How a plugin's shared object is built, in tree (cmake/Paddock.cmake) and out of tree (the
# installed paddockConfig.cmake): paddock-<kind>-<name>.so, hidden visibility, only the SDK and
# the given libraries linked, undefined symbols refused at link time.
function(paddock_plugin_properties target kind name output_dir)
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME paddock-${kind}-${name}
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${output_dir}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_compile_features(${target} PRIVATE cxx_std_20)
  target_link_libraries(${target} PRIVATE paddock::sdk)
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
endfunction()
