# The Debian package: `cpack -G DEB` in a build (Release: BUILD_DIR=build-release
# BUILD_TYPE=Release scripts/build.sh server) makes paddock_<version>_<arch>.deb with the server,
# the runtime and the plugins under /usr, /etc/paddock/paddock.toml (the embedded default
# config, a conffile), the systemd unit, the paddock system user and /var/lib/paddock
# (deploy/debian/: unit and maintainer scripts). Depends is computed by dpkg-shlibdeps from what
# the binaries and plugins link, plus the programs they run (bwrap; adduser for postinst).
# The SDK headers and the harness conformance suite (component sdk) are not in it.

# Installed only into the package, not by a plain `cmake --install`.
install(FILES ${PROJECT_SOURCE_DIR}/config/paddock.toml DESTINATION /etc/paddock
        COMPONENT system EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/debian/paddock.service DESTINATION /lib/systemd/system
        COMPONENT system EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/architecture.md
              ${PROJECT_SOURCE_DIR}/docs/deployment.md
        DESTINATION share/doc/paddock COMPONENT system EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME paddock)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Paddock")
set(CPACK_PACKAGE_CONTACT "Paddock maintainers <paddock@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Control plane for AI agents, each session in its own sandbox")
set(CPACK_PACKAGE_DESCRIPTION
    "Paddock runs coding agents (Claude Code, Codex, opencode, your own) with every session in an\n"
    "isolated bubblewrap sandbox and every session durable across crashes and restarts, behind\n"
    "a REST API on :3000. This package runs it as the systemd service paddock.service with the\n"
    "embedded configuration (SQLite, local sandboxes).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL server system)
set(CPACK_DEB_COMPONENT_INSTALL ON)  # only those components,
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)  # in one package
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # paddock_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "bubblewrap, adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "nodejs, npm")  # the agent CLIs' harnesses install them from npm
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
