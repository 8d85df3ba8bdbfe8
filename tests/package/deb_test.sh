#!/usr/bin/env bash
# The Debian package as an operator gets it: installed with apt-get on this machine, the
# installed `paddock serve` started the way its systemd unit starts it (this machine's PID 1 is
# not systemd: the unit's User, Environment and ExecStart are read from the installed unit and
# run with runuser), the README's "Try it" walk-through sent to it with curl, then removed
# (the data directory stays) and purged (it goes).
#
#   tests/package/deb_test.sh PACKAGE.deb SOURCE_DIR
# Needs root (apt-get, dpkg). Prints the package's size and the install time.
set -euo pipefail
deb=$(readlink -f "$1")
src=$(readlink -f "$2")
[ "$(id -u)" -eq 0 ] || { echo "deb_test: needs root (apt-get install)" >&2; exit 1; }
[ -f "$deb" ] || { echo "deb_test: no package at $deb (scripts/test.sh builds it: cpack -G DEB in build-release)" >&2; exit 1; }
work=$(mktemp -d)
server_pid=""
fail() { echo "deb_test: FAIL: $*" >&2; [ -f "$work/server.log" ] && tail -30 "$work/server.log" >&2; exit 1; }
saved=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq paddock >/dev/null 2>&1 || true
  # A /var/lib/paddock this machine had before (a root `paddock serve` keeps its state there)
  # goes back where it was.
  if [ -n "$saved" ]; then rm -rf /var/lib/paddock && mv "$saved" /var/lib/paddock; fi
  rm -rf "$work"
}
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
if dpkg-query -W -f='${Status}' paddock 2>/dev/null | grep -q "install ok installed"; then
  fail "a paddock package is installed on this machine already; this test installs and purges its own"
fi
if [ -e /var/lib/paddock ]; then
  saved=/var/lib/paddock.before-deb-test.$$
  mv /var/lib/paddock "$saved"
fi

# ---- The package itself ------------------------------------------------------------------
name=$(basename "$deb")
[[ "$name" =~ ^paddock_[0-9]+\.[0-9]+\.[0-9]+_amd64\.deb$ ]] || fail "file name $name is not paddock_<version>_amd64.deb"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libpocofoundation80 libpoconetssl80 libsqlite3-0 libpq5 libseccomp2 libarchive13 bubblewrap; do
  [[ "$depends" == *"$lib"* ]] || fail "Depends lacks $lib: $depends"
done
for dev in -dev libgtest googletest cmake; do
  [[ "$depends" != *"$dev"* ]] || fail "Depends names a build-time package ($dev): $depends"
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar xO ./conffiles)" = "/etc/paddock/paddock.toml" ] ||
  fail "/etc/paddock/paddock.toml is not the package's conffile"

# ---- Install ------------------------------------------------------------------------------
start=$(date +%s%N)
apt-get install -y -qq "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "apt-get install"; }
install_ms=$(( ($(date +%s%N) - start) / 1000000 ))
for f in /usr/bin/paddock /usr/bin/paddock-runtime /usr/lib/paddock/plugins/paddock-sandbox-process.so \
         /usr/lib/paddock/plugins/paddock-store-sqlite.so /etc/paddock/paddock.toml /lib/systemd/system/paddock.service; do
  [ -e "$f" ] || fail "$f is not installed"
done
cmp -s /etc/paddock/paddock.toml "$src/config/paddock.toml" || fail "/etc/paddock/paddock.toml is not config/paddock.toml"
uid=$(id -u paddock) || fail "no paddock user"
[ "$uid" -lt 1000 ] || fail "paddock is not a system user (uid $uid)"
[ "$(stat -c %U:%G /var/lib/paddock)" = "paddock:paddock" ] || fail "/var/lib/paddock is not paddock's"
systemd-analyze verify /lib/systemd/system/paddock.service >"$work/verify.log" 2>&1 ||
  { cat "$work/verify.log" >&2; fail "systemd-analyze verify paddock.service"; }
unit=/lib/systemd/system/paddock.service
for want in "User=paddock" "Restart=on-failure" "LimitNOFILE=" "NoNewPrivileges=yes" "ProtectSystem=strict"; do
  grep -q "^$want" "$unit" || fail "the unit has no $want"
done
/usr/bin/paddock version | grep -q "^paddock " || fail "paddock version"
/usr/bin/paddock plugins >/dev/null || fail "the installed paddock does not find its plugins"

# ---- Run it as the unit does --------------------------------------------------------------
user=$(sed -n 's/^User=//p' "$unit")
env_args=$(sed -n 's/^Environment=//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
cd /var/lib/paddock
# The README says :3000; the test takes a free port (the unit's command line, plus --port).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086
runuser -u "$user" -- env $env_args $exec_start --port "$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -sf "localhost:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || fail "the installed server exited"
  sleep 0.1
done
curl -sf "localhost:$port/readyz" >/dev/null || fail "the installed server is not ready"
# The first start made an operator key, readable only by paddock (and root).
[ "$(stat -c '%U %a' /var/lib/paddock/admin.key)" = "paddock 600" ] || fail "admin.key: $(stat -c '%U %a' /var/lib/paddock/admin.key)"
export PADDOCK_KEY
PADDOCK_KEY=$(cat /var/lib/paddock/admin.key)
[ "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$port/api/agents")" = 401 ] || fail "the API answers without a key"

# The README's walk-through, command by command, with its placeholders filled in.
mapfile -t commands < <(python3 - "$src/README.md" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = text.split("## Try it", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
joined = re.sub(r"\\\n\s*", " ", block)
for line in joined.splitlines():
    if line.strip().startswith("curl"):
        print(line.strip())
PY
)
[ "${#commands[@]}" -ge 5 ] || fail "the README's walk-through has ${#commands[@]} curl commands"
agent="" session=""
for c in "${commands[@]}"; do
  c=${c//localhost:3000/localhost:$port}
  c=${c//<id>/$agent}
  c=${c//<session>/$session}
  if [[ "$c" == *"-N "* ]]; then c="${c/curl -N/curl -N --max-time 5}"; fi
  out=$(eval "$c" 2>/dev/null || true)
  echo "\$ $c" >>"$work/walk.log"
  echo "$out" >>"$work/walk.log"
  if [ -z "$agent" ] && [[ "$c" == *"/api/agents"* ]]; then
    agent=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$out") || fail "no agent: $out"
  elif [ -z "$session" ] && [[ "$c" == *"/api/sessions "* || "$c" == *"/api/sessions -H"* ]]; then
    session=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$out") || fail "no session: $out"
  fi
done
transcript=$(curl -s -H "Authorization: Bearer $PADDOCK_KEY" "localhost:$port/api/sessions/$session/messages")
for _ in $(seq 1 100); do
  [[ "$transcript" == *'hello'* ]] && break
  sleep 0.2
  transcript=$(curl -s -H "Authorization: Bearer $PADDOCK_KEY" "localhost:$port/api/sessions/$session/messages")
done
[[ "$transcript" == *'hello'* ]] || { cat "$work/walk.log" >&2; fail "the transcript has no 'hello': $transcript"; }
grep -q 'hello' "$work/walk.log" || fail "the event stream showed no 'hello'"
[ -n "$(find /var/lib/paddock -mindepth 1 -maxdepth 2 -user paddock)" ] || fail "nothing of paddock's in /var/lib/paddock"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
cd /

# ---- Remove keeps the data, purge removes it ------------------------------------------------
# The server stopped; its sandboxes outlive it (a restarted server takes them back). Removing
# the package stops them (systemd does, with the unit's control group; prerm, without systemd).
pgrep -u paddock >/dev/null || fail "no sandbox of the walk-through outlived the server"
apt-get remove -y -qq paddock >/dev/null 2>&1 || fail "apt-get remove"
! pgrep -u paddock >/dev/null || fail "remove left processes of the paddock user: $(pgrep -a -u paddock)"
[ ! -e /usr/bin/paddock ] || fail "remove left /usr/bin/paddock"
[ -d /var/lib/paddock ] && [ -n "$(ls -A /var/lib/paddock)" ] || fail "remove deleted /var/lib/paddock"
[ -f /etc/paddock/paddock.toml ] || fail "remove deleted the conffile"
apt-get purge -y -qq paddock >/dev/null 2>&1 || fail "apt-get purge"
[ ! -e /var/lib/paddock ] || fail "purge left /var/lib/paddock"
[ ! -e /etc/paddock ] || fail "purge left /etc/paddock"
! getent passwd paddock >/dev/null || fail "purge left the paddock user"

echo "package $name: $(( $(stat -c %s "$deb") / 1024 )) KiB (installed $(dpkg-deb -f "$deb" Installed-Size) KiB); apt-get install ${install_ms} ms"
echo "deb_test: ok"
