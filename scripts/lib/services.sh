# Private, throw-away service instances for scripts/test and scripts/bench:
# PostgreSQL, Redis and a Kafka-compatible broker (tansu), each on a free
# port in a temporary directory. Source this file, call provision_postgres /
# provision_redis / provision_kafka, and `trap stop_services EXIT`.
# shellcheck shell=bash

# PostgreSQL: a private, throw-away instance for the store suite's
# PostgreSQL runner (MARKETD_TEST_POSTGRES_URL). Installed when missing.
PG_DIR=""
PG_BIN=""
stop_postgres() {
  if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
    if [ -n "$PG_BIN" ] && [ -f "$PG_DIR/postmaster.pid" ]; then
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
  fi
}
SERVICE_DIR="$(mktemp -d /tmp/marketd-services.XXXXXX)"
REDIS_PID=""
KAFKA_PID=""
stop_services() {
  stop_postgres
  for pid in "$KAFKA_PID" "$REDIS_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$SERVICE_DIR"
}

find_pg_bin() {
  local d
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}

provision_postgres() {
  if ! PG_BIN="$(find_pg_bin)"; then
    echo "PostgreSQL not found: installing it (apt-get install -y postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y postgresql >/dev/null; then
      apt-get update >/dev/null && apt-get install -y postgresql >/dev/null || return 1
    fi
    PG_BIN="$(find_pg_bin)" || return 1
  fi
  id postgres >/dev/null 2>&1 || return 1
  PG_DIR="$(mktemp -d /tmp/marketd-pg.XXXXXX)" || return 1
  chown postgres: "$PG_DIR" && chmod 700 "$PG_DIR" || return 1
  runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR" -A trust -U postgres >"$PG_DIR.initdb.log" 2>&1 || {
    cat "$PG_DIR.initdb.log" >&2; rm -f "$PG_DIR.initdb.log"; return 1; }
  rm -f "$PG_DIR.initdb.log"
  local port attempt
  for attempt in 1 2 3; do
    port="$(free_port)"
    if runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR" \
        -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" \
        -l "$PG_DIR/log" -w start >/dev/null; then
      export MARKETD_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
      echo "PostgreSQL ($PG_BIN) listening on 127.0.0.1:$port"
      return 0
    fi
    tail -n 20 "$PG_DIR/log" >&2 || true
  done
  return 1
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "$@" >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y "$@" >/dev/null; }
}

# Waits until something listens on 127.0.0.1:$1 (at most $2 seconds).
wait_port() {
  local port="$1" secs="$2" i
  for i in $(seq 1 $((secs * 10))); do
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1', $port)))" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

provision_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "Redis not found: installing it (apt-get install -y redis-server)"
    apt_install redis-server || return 1
  fi
  local port
  port="$(free_port)"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$SERVICE_DIR" --logfile "$SERVICE_DIR/redis.log" &
  REDIS_PID=$!
  wait_port "$port" 20 || { tail -n 20 "$SERVICE_DIR/redis.log" >&2 || true; return 1; }
  export MARKETD_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  echo "Redis ($(redis-server --version | awk '{print $3}')) listening on 127.0.0.1:$port"
}

provision_kafka() {
  if ! command -v tansu >/dev/null 2>&1; then
    # A build directory that outlives the run: an install cut short (a
    # session's end, a CI time-out) resumes where it stopped next time
    # instead of starting again (tansu builds ~600 crates).
    local build_dir="${XDG_CACHE_HOME:-$HOME/.cache}/marketd/tansu-target"
    echo "tansu not found: installing it into ~/.cargo/bin (cargo install tansu --locked --features dynostore,postgres --target-dir $build_dir)"
    cargo install tansu --locked --features dynostore,postgres --target-dir "$build_dir" || return 1
  fi
  local port
  port="$(free_port)"
  tansu broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://tansu/" \
    >"$SERVICE_DIR/tansu.log" 2>&1 &
  KAFKA_PID=$!
  wait_port "$port" 30 || { tail -n 30 "$SERVICE_DIR/tansu.log" >&2 || true; return 1; }
  export MARKETD_TEST_KAFKA_BROKERS="127.0.0.1:$port"
  echo "tansu broker ($(tansu --version 2>/dev/null || echo tansu)) listening on 127.0.0.1:$port"
}


# Node.js and npm (Debian's) for the dashboard's build and browser tests.
provision_node() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: installing it (apt-get install -y nodejs npm)"
    apt_install nodejs npm || return 1
  fi
  command -v node >/dev/null 2>&1
}

# Debian's Chromium for the browser tests (never a downloaded browser).
provision_chromium() {
  if [ -n "${CHROMIUM:-}" ] && [ -x "$CHROMIUM" ]; then return 0; fi
  if ! command -v chromium >/dev/null 2>&1; then
    echo "Chromium not found: installing it (apt-get install -y chromium)"
    apt_install chromium fonts-dejavu-core || return 1
  fi
  CHROMIUM="$(command -v chromium)"
  export CHROMIUM
}
