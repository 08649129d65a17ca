#!/usr/bin/env bash
# Tarifa's local stack: PostgreSQL 15, ClickHouse 18.16 and the Kafka-protocol
# dev broker, each a background process on loopback with a private data
# directory under one fixed place outside any checkout ($TARIFA_STACK_DIR,
# default /var/lib/tarifa-stack), so that every clone on this machine shares it.
#
#   stack.sh up      install what is missing, start what is not running, wait, print the env
#   stack.sh down    stop exactly the processes this stack started (by recorded PID)
#   stack.sh status  say what runs
#   stack.sh env     print the sourceable env file
#
# Idempotent: `up` twice reuses the running servers; servers that died (reboot,
# end of a session) are restarted on their existing data. A port held by a
# process that is not ours is reported and `up` stops.
set -euo pipefail

STACK=${TARIFA_STACK_DIR:-/var/lib/tarifa-stack}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=/usr/lib/postgresql/15/bin
PG_PORT=55432
CH_PORT=19000
CH_HTTP=18123
KAFKA_PORT=19092
# The tools this script runs live in sbin on Debian; a root shell that was
# not a login shell (su, sudo, some CI runners) may not have it on its PATH.
# Go lives where its tarball puts it unless it is on the PATH already.
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin:/usr/local/go/bin

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ours PIDFILE PATTERN: prints the PID recorded in PIDFILE when that process is
# alive and its command line contains PATTERN (so a recycled PID of a stranger
# never counts as ours); fails otherwise.
ours() {
	local pid
	[[ -s $1 ]] || return 1
	pid=$(head -n1 "$1" | tr -dc 0-9)
	[[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
	echo "$pid"
}

# wait_for DESC SECONDS CMD...: retries CMD until it succeeds or time runs out.
wait_for() {
	local desc=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	die "$desc did not answer within ${secs}s (logs: $STACK/log)"
}

# clickhouse_server: prints the ClickHouse server binary. It is looked up when
# it is needed, never when the script loads: on a fresh machine apt-get puts
# it in place halfway through `up`.
clickhouse_server() {
	local p
	for p in /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
		[[ -x $p ]] && { echo "$p"; return 0; }
	done
	return 1
}

# missing_packages: prints, one a line, the Debian packages that hold a program
# this script runs and that is not installed. Some are Essential or Priority
# required on Debian, yet a trimmed image may lack them.
missing_packages() {
	local -A pkgs=()
	local tool
	[[ -x $PG_BIN/postgres && -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || pkgs[postgresql-15]=1
	[[ -x $PG_BIN/pg_isready ]] && command -v psql >/dev/null || pkgs[postgresql-client-15]=1
	clickhouse_server >/dev/null || pkgs[clickhouse-server]=1
	command -v clickhouse-client >/dev/null || pkgs[clickhouse-client]=1
	command -v kcat >/dev/null || pkgs[kcat]=1
	# pdftotext reads invoice PDFs back in the billing tests.
	command -v pdftotext >/dev/null || pkgs[poppler-utils]=1
	for tool in findmnt mountpoint runuser setsid flock; do
		command -v $tool >/dev/null || pkgs[util-linux]=1
	done
	command -v mount >/dev/null || pkgs[mount]=1
	command -v mkfs.ext4 >/dev/null || pkgs[e2fsprogs]=1
	command -v useradd >/dev/null || pkgs[passwd]=1
	((${#pkgs[@]} == 0)) || printf '%s\n' "${!pkgs[@]}" | sort
}

install_missing() {
	local pkgs
	mapfile -t pkgs < <(missing_packages)
	((${#pkgs[@]} == 0)) && return 0
	[[ $(id -u) == 0 ]] || die "missing packages (${pkgs[*]}) and not root to install them"
	log "installing ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >"$STACK/log/apt.log" 2>&1 || {
		tail -n 20 "$STACK/log/apt.log" >&2
		die "apt-get update failed (see $STACK/log/apt.log)"
	}
	# Debian's postgresql and clickhouse packages try to start system-wide
	# services; this stack runs its own, so keep them from starting.
	local policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		policy=1
	fi
	apt-get install -y -qq "${pkgs[@]}" >>"$STACK/log/apt.log" 2>&1 || {
		[[ $policy == 0 ]] || rm -f /usr/sbin/policy-rc.d
		tail -n 20 "$STACK/log/apt.log" >&2
		die "apt-get install ${pkgs[*]} failed (see $STACK/log/apt.log)"
	}
	[[ $policy == 0 ]] || rm -f /usr/sbin/policy-rc.d
	# Every program is looked up again now that apt has put it in place.
	mapfile -t pkgs < <(missing_packages)
	((${#pkgs[@]} == 0)) || die "still missing after apt-get install: ${pkgs[*]} (see $STACK/log/apt.log)"
	log "installed (apt log: $STACK/log/apt.log)"
}

start_postgres() {
	local dir=$STACK/pg pid
	if pid=$(ours "$STACK/run/pg.pid" "$dir"); then
		log "postgresql already running (pid $pid)"
		return 0
	fi
	port_open $PG_PORT && die "port $PG_PORT (PostgreSQL) is taken by a process this stack did not start; stop it or free the port"
	id postgres >/dev/null 2>&1 || useradd --system --home-dir "$STACK/pg" --shell /bin/bash postgres
	if [[ ! -s $dir/PG_VERSION ]]; then
		log "initialising postgresql in $dir"
		rm -rf "$dir" && mkdir -p "$dir" && chown postgres: "$dir" && chmod 700 "$dir"
		runuser -u postgres -- "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$STACK/log/initdb.log" 2>&1 ||
			die "initdb failed (see $STACK/log/initdb.log)"
		cat >>"$dir/postgresql.conf" <<-EOF
			listen_addresses = '127.0.0.1'
			port = $PG_PORT
			unix_socket_directories = '$STACK/pgsock'
		EOF
	fi
	# Tuning lives in deploy/local/postgresql.conf, copied on every start so
	# that a stack made before a change gets it too (it is included last).
	install -o postgres -m 0644 "$REPO/deploy/local/postgresql.conf" "$dir/tarifa.conf"
	grep -qx "include_if_exists = 'tarifa.conf'" "$dir/postgresql.conf" ||
		echo "include_if_exists = 'tarifa.conf'" >>"$dir/postgresql.conf"
	mkdir -p "$STACK/pgsock" && chown postgres: "$STACK/pgsock"
	touch "$STACK/log/postgresql.log" && chown postgres: "$STACK/log/postgresql.log"
	rm -f "$dir/postmaster.pid" # stale after a crash; the port check above proved nobody serves it
	# The workers' dedupe statements carry arrays of tens of thousands of
	# keys; with glibc's default thresholds every such statement maps fresh
	# memory and gives it back: in make bench-e2e the page faults alone were
	# a tenth of the machine's CPU. Keep freed memory in the backends.
	runuser -u postgres -- env MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=536870912 MALLOC_TOP_PAD_=67108864 \
		"$PG_BIN/pg_ctl" -D "$dir" -l "$STACK/log/postgresql.log" -w -t 60 start >/dev/null 9>&- ||
		die "postgresql did not start (see $STACK/log/postgresql.log)"
	head -n1 "$dir/postmaster.pid" >"$STACK/run/pg.pid"
	wait_for "postgresql" 30 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p $PG_PORT -U postgres
	log "postgresql started (pid $(cat "$STACK/run/pg.pid"))"
}

write_clickhouse_config() {
	local dir=$STACK/clickhouse
	mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
	cat >"$dir/config.xml" <<-EOF
		<?xml version="1.0"?>
		<yandex>
		    <logger>
		        <level>warning</level>
		        <log>$STACK/log/clickhouse.log</log>
		        <errorlog>$STACK/log/clickhouse.err.log</errorlog>
		        <size>100M</size>
		        <count>3</count>
		    </logger>
		    <listen_host>127.0.0.1</listen_host>
		    <http_port>$CH_HTTP</http_port>
		    <tcp_port>$CH_PORT</tcp_port>
		    <max_connections>1024</max_connections>
		    <keep_alive_timeout>3</keep_alive_timeout>
		    <max_concurrent_queries>200</max_concurrent_queries>
		    <mark_cache_size>536870912</mark_cache_size>
		    <path>$dir/data/</path>
		    <tmp_path>$dir/tmp/</tmp_path>
		    <user_files_path>$dir/user_files/</user_files_path>
		    <format_schema_path>$dir/format_schemas/</format_schema_path>
		    <users_config>$dir/users.xml</users_config>
		    <default_profile>default</default_profile>
		    <default_database>default</default_database>
		    <timezone>UTC</timezone>
		    <mlock_executable>false</mlock_executable>
		    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
		    <max_session_timeout>3600</max_session_timeout>
		    <default_session_timeout>60</default_session_timeout>
		</yandex>
	EOF
	cat >"$dir/users.xml" <<-EOF
		<?xml version="1.0"?>
		<yandex>
		    <profiles>
		        <default>
		            <max_memory_usage>4000000000</max_memory_usage>
		            <background_pool_size>4</background_pool_size>
		            <load_balancing>random</load_balancing>
		        </default>
		    </profiles>
		    <users>
		        <default>
		            <password></password>
		            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
		            <profile>default</profile>
		            <quota>default</quota>
		        </default>
		    </users>
		    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
		        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
		</yandex>
	EOF
}

clickhouse_ready() { clickhouse-client --port $CH_PORT --host 127.0.0.1 --query "SELECT 1"; }

# nojournal_ext4 DIR: DIR is on an ext4 mounted without a journal.
nojournal_ext4() {
	local dev opts
	[[ $(findmnt -n -o FSTYPE --target "$1" 2>/dev/null) == ext4 ]] || return 1
	# --nofsroot: a bind-mounted or chroot root reads /dev/vda[/some/dir].
	dev=$(findmnt -n --nofsroot -o SOURCE --target "$1")
	dev=$(readlink -f "$dev") # /dev/mapper/x and /dev/root are links
	opts=/proc/fs/ext4/${dev##*/}/options
	[[ -r $opts ]] && ! grep -q '^data=' "$opts"
}

# clickhouse_volume: ClickHouse 18.16 writes two files per column for every
# part, thousands a minute under load, and deletes as many when parts merge.
# An ext4 without a journal (the root filesystem of the machines Tarifa is
# developed on) holds back inodes freed in the last minutes, and every new
# file scans past them: in `make bench-e2e` that scan was 15 % of all CPU and
# cost a fifth of the throughput. On such a filesystem ClickHouse's data
# directory is a journaled ext4 image, sparse and mounted with discard, so it
# only takes the space the data needs. Where that cannot be done the data
# stays where it is (slower), and an image once made is never left unmounted.
clickhouse_volume() {
	local data=$STACK/clickhouse/data img=$STACK/clickhouse.img size
	mkdir -p "$data"
	mountpoint -q "$data" && return 0
	if [[ ! -e $img ]]; then
		nojournal_ext4 "$STACK" || return 0
		if [[ -n $(ls -A "$data") ]]; then
			log "clickhouse data in $data predates the journaled volume; keeping it there (remove it to get the faster volume)"
			return 0
		fi
		# Three quarters of the free space, at most 256 GiB, at least 4 GiB.
		size=$(($(df --output=avail -B1 "$STACK" | tail -n1) * 3 / 4))
		size=$((size > 256 << 30 ? 256 << 30 : size))
		((size >= 4 << 30)) || { log "less than 4 GiB free; clickhouse data stays on the root filesystem"; return 0; }
		if ! { truncate -s "$size" "$img.new" && mkfs.ext4 -q -F -L tarifa-clickhouse "$img.new" >"$STACK/log/mkfs.log" 2>&1; }; then
			rm -f "$img.new"
			log "could not make a filesystem image (see $STACK/log/mkfs.log); clickhouse data stays on the root filesystem"
			return 0
		fi
		if ! mount -o loop,discard,noatime "$img.new" "$data" 2>"$STACK/log/mount.log"; then
			rm -f "$img.new"
			log "could not mount a filesystem image (see $STACK/log/mount.log); clickhouse data stays on the root filesystem"
			return 0
		fi
		mv "$img.new" "$img"
		log "clickhouse data volume: $img ($((size >> 30)) GiB sparse, ext4 with a journal)"
		return 0
	fi
	mount -o loop,discard,noatime "$img" "$data" 2>"$STACK/log/mount.log" ||
		die "could not mount $img on $data (see $STACK/log/mount.log); it holds ClickHouse's data, so clickhouse is not started without it"
}

start_clickhouse() {
	local dir=$STACK/clickhouse pid server
	if pid=$(ours "$STACK/run/clickhouse.pid" "$dir/config.xml"); then
		log "clickhouse already running (pid $pid)"
		return 0
	fi
	port_open $CH_PORT && die "port $CH_PORT (ClickHouse native) is taken by a process this stack did not start; stop it or free the port"
	port_open $CH_HTTP && die "port $CH_HTTP (ClickHouse HTTP) is taken by a process this stack did not start; stop it or free the port"
	server=$(clickhouse_server) || die "clickhouse-server is not installed"
	clickhouse_volume
	write_clickhouse_config
	# setsid puts the server in a session of its own, so it outlives the shell
	# that started it; $! is the server itself (setsid execs it).
	setsid "$server" --config-file="$dir/config.xml" </dev/null >>"$STACK/log/clickhouse.out" 2>&1 9>&- &
	echo $! >"$STACK/run/clickhouse.pid"
	wait_for "clickhouse" 60 clickhouse_ready
	log "clickhouse started (pid $(cat "$STACK/run/clickhouse.pid"))"
}

start_broker() {
	local bin=$STACK/bin/tarifa-devbroker pid
	if pid=$(ours "$STACK/run/broker.pid" "$bin"); then
		log "dev broker already running (pid $pid)"
		return 0
	fi
	port_open $KAFKA_PORT && die "port $KAFKA_PORT (Kafka) is taken by a process this stack did not start; stop it or free the port"
	log "building the dev broker"
	(cd "$REPO" && go build -o "$bin.new" ./cmd/devbroker) || die "go build ./cmd/devbroker failed"
	mv "$bin.new" "$bin"
	mkdir -p "$STACK/broker"
	setsid "$bin" --port $KAFKA_PORT --data-dir "$STACK/broker" </dev/null >>"$STACK/log/broker.log" 2>&1 9>&- &
	echo $! >"$STACK/run/broker.pid"
	wait_for "dev broker" 30 port_open $KAFKA_PORT
	log "dev broker started (pid $(cat "$STACK/run/broker.pid"))"
}

write_env() {
	cat >"$STACK/env" <<-EOF
		export TARIFA_PG_DSN='postgres://postgres@127.0.0.1:$PG_PORT/tarifa?sslmode=disable'
		export TARIFA_CLICKHOUSE_DSN='clickhouse://127.0.0.1:$CH_PORT/tarifa'
		export TARIFA_KAFKA_BROKERS='127.0.0.1:$KAFKA_PORT'
		export TARIFA_KAFKA_TOPIC='cdrs'
	EOF
}

# stop NAME PIDFILE PATTERN: TERM the recorded process if it is ours, then KILL
# it after 20 s.
stop() {
	local pid i
	if ! pid=$(ours "$2" "$3"); then
		rm -f "$2"
		log "$1 not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		[[ -e /proc/$pid ]] || break
		sleep 0.2
	done
	if [[ -e /proc/$pid ]]; then
		log "$1 (pid $pid) ignored SIGTERM for 20s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$2"
	log "$1 stopped (pid $pid)"
}

# go_version: the Go release go.mod asks for.
go_version() { sed -n 's/^go //p' "$REPO/go.mod"; }

# preflight: before starting anything, every port of a server that is not
# already ours must be free, so a stranger's server is never mixed into the
# stack and nothing is left half started.
preflight() {
	local taken=()
	ours "$STACK/run/pg.pid" "$STACK/pg" >/dev/null || ! port_open $PG_PORT || taken+=("$PG_PORT (PostgreSQL)")
	if ! ours "$STACK/run/clickhouse.pid" "$STACK/clickhouse/config.xml" >/dev/null; then
		port_open $CH_PORT && taken+=("$CH_PORT (ClickHouse native)")
		port_open $CH_HTTP && taken+=("$CH_HTTP (ClickHouse HTTP)")
	fi
	if ! ours "$STACK/run/broker.pid" "$STACK/bin/tarifa-devbroker" >/dev/null; then
		port_open $KAFKA_PORT && taken+=("$KAFKA_PORT (Kafka)")
		# Go is not a Debian package here (bookworm's is too old): say so
		# before anything is installed or started.
		command -v go >/dev/null || die "go is not on the PATH nor in /usr/local/go/bin: install Go $(go_version) in /usr/local/go to build the dev broker; nothing was started"
	fi
	((${#taken[@]} == 0)) && return 0
	local p
	for p in "${taken[@]}"; do log "port $p is taken by a process this stack did not start"; done
	die "free those ports (or stop what holds them) and run again; nothing was started"
}

up() {
	mkdir -p "$STACK/run" "$STACK/log" "$STACK/bin"
	chmod 755 "$STACK" "$STACK/run"
	exec 9>"$STACK/run/lock"
	# flock is the one tool used before install_missing; util-linux, which
	# holds it, is Essential on Debian.
	command -v flock >/dev/null || die "flock is missing: apt-get install util-linux"
	flock -w 300 9 || die "another stack.sh holds $STACK/run/lock"
	preflight
	install_missing
	start_postgres
	start_clickhouse
	start_broker
	write_env
	cat "$STACK/env"
}

down() {
	mkdir -p "$STACK/run"
	exec 9>"$STACK/run/lock"
	flock -w 300 9 || die "another stack.sh holds $STACK/run/lock"
	stop "dev broker" "$STACK/run/broker.pid" "$STACK/bin/tarifa-devbroker"
	stop "clickhouse" "$STACK/run/clickhouse.pid" "$STACK/clickhouse/config.xml"
	stop "postgresql" "$STACK/run/pg.pid" "$STACK/pg"
}

status() {
	local pid
	if pid=$(ours "$STACK/run/pg.pid" "$STACK/pg"); then echo "postgresql  running  pid $pid  127.0.0.1:$PG_PORT"; else echo "postgresql  stopped"; fi
	if pid=$(ours "$STACK/run/clickhouse.pid" "$STACK/clickhouse/config.xml"); then echo "clickhouse  running  pid $pid  127.0.0.1:$CH_PORT (http $CH_HTTP)"; else echo "clickhouse  stopped"; fi
	if pid=$(ours "$STACK/run/broker.pid" "$STACK/bin/tarifa-devbroker"); then echo "dev broker  running  pid $pid  127.0.0.1:$KAFKA_PORT"; else echo "dev broker  stopped"; fi
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
env) [[ -s $STACK/env ]] || die "no env file: run '$0 up' first"; cat "$STACK/env" ;;
*) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
