#!/usr/bin/env bash
# The three images built from deploy/docker/ with Debian's podman (buildah inside), as a
# packager would with docker:
#  - the base images are made here: `debootstrap --variant=minbase bookworm` from Debian's
#    archive, imported as debian:12 and debian:12-slim (no registry is reachable; the rootfs is
#    cached in $PADDOCK_IMAGE_CACHE, default /var/cache/paddock-test);
#  - control-plane.Dockerfile with SOURCE=package: the package scripts/package.sh made (its
#    SOURCE=build stage runs the same cmake/cpack steps, which CI runs outside the image);
#  - sandbox.Dockerfile on it, and harness.Dockerfile on that with a small npm package in place
#    of an agent CLI (the CLIs themselves are tested by the agent CLI tests; each is ~350 MB).
# RUN steps use buildah's chroot isolation and the images are checked with `buildah run`: this
# machine's cgroup setup (hybrid) lets neither crun nor runc start a container.
#
#   tests/package/image_test.sh SOURCE_DIR
# Needs root. Prints each image's size.
set -euo pipefail
src=$(readlink -f "$1")
[ "$(id -u)" -eq 0 ] || { echo "image_test: needs root (podman, debootstrap)" >&2; exit 1; }
cache=${PADDOCK_IMAGE_CACHE:-/var/cache/paddock-test}
tag=${PADDOCK_IMAGE_TAG:-citest}
fail() { echo "image_test: FAIL: $*" >&2; exit 1; }
ls "$src"/build-release/paddock_*_amd64.deb >/dev/null 2>&1 ||
  fail "no package in $src/build-release (scripts/test.sh makes it with scripts/package.sh)"
for tool in podman buildah debootstrap; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh installs it)"
done
build() { podman build --pull=never --isolation chroot "$@"; }
run_in() {  # run_in IMAGE COMMAND...: the command in a container of the image
  local image=$1 ctr
  shift
  ctr=$(buildah from --pull=never "$image")
  buildah run --isolation chroot "$ctr" -- "$@"
  local rc=$?
  buildah rm "$ctr" >/dev/null
  return $rc
}

# ---- Base images ----------------------------------------------------------------------------
mkdir -p "$cache"
rootfs_tar=$cache/debian-12-minbase.tar
slim_tar=$cache/debian-12-minbase-slim.tar
if [ ! -s "$rootfs_tar" ] || [ ! -s "$slim_tar" ]; then
  tmp=$(mktemp -d "$cache/rootfs.XXXXXX")
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  debootstrap --variant=minbase bookworm "$tmp" "${mirror:-http://deb.debian.org/debian}" >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; fail "debootstrap"; }
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
  tar -C "$tmp" -cf "$rootfs_tar.part" . && mv "$rootfs_tar.part" "$rootfs_tar"
  # -slim as Debian's own: without documentation, manual pages and translations, and dpkg told
  # not to install them.
  printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\npath-exclude /usr/share/info/*\n' \
    >"$tmp/etc/dpkg/dpkg.cfg.d/docker-slim"
  find "$tmp/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$tmp"/usr/share/man/* "$tmp"/usr/share/locale/* "$tmp"/usr/share/info/*
  tar -C "$tmp" -cf "$slim_tar.part" . && mv "$slim_tar.part" "$slim_tar"
  rm -rf "$tmp"
fi
podman image exists localhost/debian:12 || podman import "$rootfs_tar" localhost/debian:12 >/dev/null
podman image exists localhost/debian:12-slim || podman import "$slim_tar" localhost/debian:12-slim >/dev/null

# ---- The three images -----------------------------------------------------------------------
cd "$src"
build -f deploy/docker/control-plane.Dockerfile --build-arg SOURCE=package -t "paddock:$tag" . >"$cache/control-plane.log" 2>&1 ||
  { tail -30 "$cache/control-plane.log" >&2; fail "control-plane.Dockerfile"; }
build -f deploy/docker/sandbox.Dockerfile --build-arg CONTROL_PLANE="localhost/paddock:$tag" -t "paddock-sandbox:$tag" . \
  >"$cache/sandbox.log" 2>&1 || { tail -30 "$cache/sandbox.log" >&2; fail "sandbox.Dockerfile"; }
# npm goes through this machine's TLS-intercepting egress: its CA bundle goes into the build.
build -f deploy/docker/harness.Dockerfile --build-arg BASE="localhost/paddock-sandbox:$tag" \
  --volume /etc/ssl/certs/ca-certificates.crt:/run/build-ca.crt:ro --build-arg NODE_EXTRA_CA_CERTS=/run/build-ca.crt \
  --build-arg NPM_PACKAGE=is-number@7.0.0 --build-arg TOOLS_KEY=npm-test -t "paddock-harness:$tag" . \
  >"$cache/harness.log" 2>&1 || { tail -30 "$cache/harness.log" >&2; fail "harness.Dockerfile"; }

# ---- What runs in them ------------------------------------------------------------------------
version=$(run_in "paddock:$tag" paddock version) || fail "paddock version in the control-plane image"
[[ "$version" == "paddock "* ]] || fail "paddock version printed: $version"
plugins=$(run_in "paddock:$tag" paddock plugins) || fail "paddock plugins in the control-plane image"
[[ "$plugins" == *'"id": "sandbox.kind"'* && "$plugins" == *'"id": "store.postgres"'* ]] ||
  fail "the image's paddock does not find its plugins: $plugins"
help=$(run_in "paddock-sandbox:$tag" /usr/local/bin/paddock-runtime --help 2>&1) || fail "paddock-runtime --help: $help"
[[ "$help" == *"--listen"* ]] || fail "paddock-runtime --help printed: $help"
run_in "paddock-harness:$tag" test -f /opt/paddock/tools/npm-test/lib/node_modules/is-number/package.json ||
  fail "the harness image has no npm package under /opt/paddock/tools/<key>"
run_in "paddock-harness:$tag" node -e 'process.exit(0)' || fail "node in the harness image"
config() { podman image inspect --format "$2" "$1"; }
[ "$(config "paddock:$tag" '{{.Config.User}}')" = "10001" ] || fail "the control plane does not run as 10001"
[ "$(config "paddock:$tag" '{{json .Config.Entrypoint}}')" = '["paddock"]' ] || fail "control-plane entrypoint"
[ "$(config "paddock-sandbox:$tag" '{{.Config.User}}')" = "1000" ] || fail "the sandbox does not run as 1000"
[ "$(config "paddock-sandbox:$tag" '{{json .Config.Entrypoint}}')" = '["/usr/local/bin/paddock-runtime"]' ] ||
  fail "sandbox entrypoint"

size() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MiB", $1 / 1048576}'; }
echo "images: debian:12 (debootstrap minbase) $(size localhost/debian:12), debian:12-slim $(size localhost/debian:12-slim)," \
     "paddock $(size "paddock:$tag"), paddock-sandbox $(size "paddock-sandbox:$tag"), paddock-harness (no CLI) $(size "paddock-harness:$tag")"
podman image prune -f >/dev/null 2>&1 || true  # the layers earlier runs' images no longer use
echo "image_test: ok"
