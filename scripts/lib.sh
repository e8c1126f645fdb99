# Shared by scripts/serve, scripts/test and scripts/bench: the venv and the real servers on loopback.
# shellcheck shell=bash

PYTHON=${PYTHON:-python3}
VENV=.venv

say() { printf '==> %s\n' "$*" >&2; }

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed" want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing the project and its dependencies"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    echo "$want" > "$stamp"
  fi
}

# ensure_commands CMD:PACKAGE ...: apt-get install the packages whose command is missing.
ensure_commands() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} with apt-get"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_redis DIR: a private redis-server on a free loopback port; sets REDIS_PORT.
start_redis() {
  local dir=$1
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
  local i
  for i in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  say "redis-server did not start"; cat "$dir/redis.log" >&2; return 1
}

stop_redis() {
  [ -n "${REDIS_PORT:-}" ] && redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

pg_bin() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$found" ]; then
    ensure_commands psql:postgresql
    found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$found"
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_postgres DIR [SERVER-OPTION ...]: a private cluster (trust auth, loopback, free port); sets PG_PORT, PG_DIR.
start_postgres() {
  local bin options="${*:2}"
  bin=$(pg_bin)
  PG_DIR=$1/pg
  PG_PORT=$(free_port)
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    install -d -o postgres -g postgres "$PG_DIR"
  else
    mkdir -p "$PG_DIR"
  fi
  as_postgres "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200 $options" start >/dev/null
  PG_BIN=$bin
}

stop_postgres() {
  [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ] && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}

create_database() {
  as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$1"
}

# fetch_docs_bundles: the docs pages' scripts, pinned in assets/docs/bundles.txt, into assets/docs/vendor/ (npm pack,
# the integrity checked against the pin). A bundle already there as pinned is kept; any failure returns 1 and
# leaves no stamp, whether or not the caller runs under set -e.
fetch_docs_bundles() {
  local docs=assets/docs dir spec integrity files
  while read -r dir spec integrity files; do
    case "$dir" in '' | '#'*) continue ;; esac
    [ -n "$files" ] || { say "bundles.txt: $dir names no files"; return 1; }
    [ "$(cat "$docs/vendor/$dir/.pinned" 2>/dev/null)" = "$spec $integrity $files" ] && continue
    ensure_commands npm:npm || return 1
    say "fetching $spec for the docs pages"
    local work status=0
    work=$(mktemp -d) || return 1
    _fetch_docs_bundle "$work" "$docs" "$dir" "$spec" "$integrity" "$files" || status=1
    rm -rf "$work"
    [ "$status" -eq 0 ] || return 1
  done < "$docs/bundles.txt"
}

_fetch_docs_bundle() {
  local work=$1 docs=$2 dir=$3 spec=$4 integrity=$5 files=$6 got file
  got=$(cd "$work" && npm pack --silent --json "$spec" \
    | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s)[0].integrity))') \
    || { say "npm pack $spec failed"; return 1; }
  [ "$got" = "$integrity" ] || { say "$spec has integrity $got, not the pinned $integrity"; return 1; }
  rm -rf "${docs:?}/vendor/$dir" && mkdir -p "$docs/vendor/$dir" || return 1
  # shellcheck disable=SC2086  # files is a list of paths
  tar -xzf "$work"/*.tgz -C "$work" $(printf 'package/%s ' $files) || return 1
  for file in $files; do
    case "$file" in
      LICENSE | NOTICE) cp "$work/package/$file" "$docs/vendor/$dir/$file.txt" || return 1 ;;  # a browser shows .txt
      *) cp "$work/package/$file" "$docs/vendor/$dir/" || return 1 ;;
    esac
  done
  if [ -f "$docs/$dir.LICENSE" ]; then cp "$docs/$dir.LICENSE" "$docs/vendor/$dir/LICENSE.txt" || return 1; fi
  echo "$spec $integrity $files" > "$docs/vendor/$dir/.pinned"
}
