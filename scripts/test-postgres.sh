#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks, in a directory of its own.
#   test-postgres.sh start DIR   initdb + start on a free port; writes DIR/conninfo
#   test-postgres.sh down DIR    stop the server, keep its data (to simulate an outage)
#   test-postgres.sh up DIR      start it again on the same port
#   test-postgres.sh stop DIR    stop it and remove DIR
set -euo pipefail
cmd=${1:?usage: test-postgres.sh start|down|up|stop DIR}
dir=${2:?usage: test-postgres.sh start|down|up|stop DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/pg_ctl" ] || { echo "test-postgres: no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)" >&2; exit 1; }
# initdb and the server refuse to run as root: use the postgres account then.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_ctl_start() {
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $(cat "$dir/port") -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off" \
    start >/dev/null
}
case "$cmd" in
  start)
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' >"$dir/port"
    pg_ctl_start
    echo "host=127.0.0.1 port=$(cat "$dir/port") user=postgres dbname=postgres" >"$dir/conninfo"
    ;;
  down) as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
  up) pg_ctl_start ;;
  stop)
    if [ -d "$dir/data" ]; then as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    ;;
  *) echo "test-postgres: unknown command $cmd" >&2; exit 2 ;;
esac
