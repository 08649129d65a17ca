#!/usr/bin/env bash
# test-fresh.sh (make test-fresh): the first run on a brand-new machine, tested.
#
# It makes a pristine Debian 12 root (debootstrap --variant=minbase bookworm)
# and in it, as a new user would, runs `deploy/local/stack.sh up`, which must
# install every Debian package through its own apt path and start the
# servers. Then it checks that every server answers (a PostgreSQL query,
# ClickHouse over its native and HTTP ports, a Kafka produce and consume with
# kcat, `tarifa migrate` and the tables it made), that a second `up` reuses
# what runs, that `down` stops everything by PID and nothing is left, and that
# `up` refuses a port held by a stranger and then starts nothing.
#
# Isolation. The root runs in mount, PID and network namespaces of its own
# (unshare): its servers listen on the loopback of a network namespace that
# only they use, so their ports never meet the host's stack; everything
# mounted there (its /proc, /sys, /dev, the read-only repo, Go and module
# cache, ClickHouse's loop-mounted image) belongs to that mount namespace and
# is unmounted on the way out, on failure too. An interrupt (Ctrl-C, SIGTERM)
# ends the namespaces at once: the kernel ends their processes and drops their
# mounts. The one way out of the network namespace is a bridge to the Debian
# mirror the host's apt uses (a socat pair over a Unix socket; the mirror's
# name points at the bridge in the root's /etc/hosts), so apt in the root
# fetches from the same archive, with the same date checks, as the host.
# Go modules cannot be fetched from in there: the host downloads them first and
# the root sees the host's module cache read-only (GOPROXY=off).
#
# The root itself is new every run and removed at the end. Only the .debs that
# debootstrap fetches are cached between runs ($TARIFA_FRESH_CACHE, default
# /var/cache/tarifa-fresh); the packages stack.sh installs are fetched anew.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SELF=$REPO/deploy/local/test-fresh.sh
SUITE=bookworm
CACHE=${TARIFA_FRESH_CACHE:-/var/cache/tarifa-fresh}
# Inside the root the stack has a directory of its own, so that neither its
# PID files nor its servers' command lines can be taken for the host's.
ROOT_STACK=/var/lib/tarifa-fresh
ROOT_REPO=/src/tarifa

# Every line says how far into the run it is (SECONDS counts from the start
# of the host side; the namespace side takes the count over).
log() { printf '[%3ds] test-fresh: %s\n' "$SECONDS" "$*" >&2; }
die() { printf '[%3ds] test-fresh: FAIL: %s\n' "$SECONDS" "$*" >&2; exit 1; }
took() { printf '%ds' $((SECONDS - $1)); }
# stamp: copies its input to stderr, each line with the time it came.
stamp() { local l; while IFS= read -r l; do printf '[%3ds] %s\n' "$SECONDS" "$l" >&2; done; }
# Ports of the stack (deploy/local/stack.sh).
PORTS=(55432 19000 18123 19092)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- host side

# host_tools: what this test needs on the host, installed with apt if missing.
host_tools() {
	local pkgs=()
	[[ $(id -u) == 0 ]] || die "run as root (debootstrap, namespaces and mounts need it)"
	command -v debootstrap >/dev/null || pkgs+=(debootstrap)
	command -v socat >/dev/null || pkgs+=(socat)
	command -v ip >/dev/null || pkgs+=(iproute2)
	command -v unshare >/dev/null || pkgs+=(util-linux)
	if ((${#pkgs[@]})); then
		log "installing on the host: ${pkgs[*]}"
		export DEBIAN_FRONTEND=noninteractive
		if ! { apt-get update -qq >/dev/null && apt-get install -y -qq "${pkgs[@]}" >/dev/null; }; then
			die "apt-get install ${pkgs[*]} failed"
		fi
	fi
	export PATH=$PATH:/usr/local/go/bin
	command -v go >/dev/null || die "go is needed on the host (/usr/local/go)"
}

# debian_sources: prints "URI SUITE" for every Debian suite of this release
# that the host's apt uses (its own view of sources.list and
# sources.list.d, in either format).
debian_sources() {
	# shellcheck disable=SC2016 # apt's own placeholders, not the shell's
	apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' |
		awk -v s="$SUITE" '$2 ~ "^" s "(-|$)" && $3 == "main" {print $1, $2}' | sort -u
}

# uri_host URI: prints host[:port] of an http URI.
uri_host() { local h=${1#http://}; echo "${h%%/*}"; }

# make_root: a pristine minbase root in $ROOT, from debootstrap's cached .debs
# when they are there.
make_root() {
	local mirror=$1 tarball=$CACHE/$SUITE-minbase.tgz t=$SECONDS
	mkdir -p "$CACHE"
	if [[ ! -s $tarball ]]; then
		log "downloading the $SUITE minbase packages from $mirror (cached in $tarball)"
		debootstrap --variant=minbase --make-tarball="$tarball.new" "$SUITE" "$W/dl" "$mirror" >"$W/debootstrap.log" 2>&1 || {
			tail -n 20 "$W/debootstrap.log" >&2
			die "debootstrap --make-tarball failed"
		}
		mv "$tarball.new" "$tarball"
		rm -rf "$W/dl"
	fi
	log "debootstrap --variant=minbase $SUITE into $ROOT"
	if ! debootstrap --variant=minbase --unpack-tarball="$tarball" "$SUITE" "$ROOT" "$mirror" >>"$W/debootstrap.log" 2>&1; then
		# An archive that moved on makes a cached tarball stale: fetch once more.
		log "the cached tarball did not install; fetching the packages again"
		rm -rf "$ROOT" "$tarball"
		debootstrap --variant=minbase "$SUITE" "$ROOT" "$mirror" >>"$W/debootstrap.log" 2>&1 || {
			tail -n 20 "$W/debootstrap.log" >&2
			die "debootstrap failed"
		}
	fi
	log "pristine root made in $(took "$t") ($(du -sh "$ROOT" | cut -f1))"
}

# configure_root: the root's apt reaches what the host's reaches, the way a
# machine installed from the same archive would: the same Debian suites, and
# the same date checks (a dated snapshot of the archive has Release files
# that are past their Valid-Until). Each mirror host gets a loopback address of
# the root's network namespace, where its bridge listens.
configure_root() {
	local uri suite host i=0 hosts=()
	local -A seen=()
	{
		while read -r uri suite; do
			printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' "$uri" "$suite"
		done < <(debian_sources)
	} >"$ROOT/etc/apt/sources.list.d/debian.sources"
	: >"$ROOT/etc/apt/sources.list"
	apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|Max-ValidTime|Min-ValidTime) ' >"$ROOT/etc/apt/apt.conf.d/50host-archive" || true
	if apt-config dump | grep -qiE '^Acquire::https?::Proxy "[^"]'; then
		die "the host's apt uses a proxy; this test bridges only direct http mirrors"
	fi
	printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' "$(hostname)" >"$ROOT/etc/hosts"
	while read -r uri suite; do
		[[ $uri == http://* ]] || die "apt source $uri is not plain http; this test bridges only http mirrors"
		host=$(uri_host "$uri")
		[[ -n ${seen[$host]:-} ]] && continue
		seen[$host]=1
		i=$((i + 1))
		hosts+=("$host")
		printf '127.0.2.%d\t%s\n' "$i" "${host%%:*}" >>"$ROOT/etc/hosts"
	done < <(debian_sources)
	((${#hosts[@]})) || die "found no $SUITE source in the host's apt configuration"
	printf '%s\n' "${hosts[@]}" >"$W/bridge/hosts"
	log "root's apt sources: $(debian_sources | tr '\n' ' ')"
	# The harness's own binary (not a Debian package): tarifa for `migrate`.
	install -m 755 "$W/tarifa" "$ROOT/usr/local/bin/tarifa"
	mkdir -p "$ROOT$ROOT_REPO" "$ROOT/usr/local/go" "$ROOT/root/go/pkg/mod"
}

# start_host_bridges: one socat per mirror host, in the host's network
# namespace, from a Unix socket in $W/bridge to the mirror's port 80.
start_host_bridges() {
	local host i=0
	while read -r host; do
		i=$((i + 1))
		[[ $host == *:* ]] || host=$host:80
		socat "UNIX-LISTEN:$W/bridge/$i.sock,fork,mode=600" "TCP:$host" </dev/null 2>>"$W/bridge.log" &
		BRIDGES+=($!)
	done <"$W/bridge/hosts"
	for ((i = 0; i < 50; i++)); do
		compgen -G "$W/bridge/*.sock" >/dev/null && break
		sleep 0.1
	done
}

host_exit() {
	local rc=$? pid
	trap - EXIT
	for pid in "${BRIDGES[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${BRIDGES[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [[ -n ${W:-} && -d $W ]]; then
		# Every mount was made in the test's own mount namespace; if one
		# showed here, removing $W could reach into the repo: keep it.
		if findmnt -rn -o TARGET | grep -q "^$W"; then
			log "mounts under $W are still visible on the host; leaving $W in place"
			findmnt -rn -o TARGET | grep "^$W" >&2
			rc=1
		elif [[ -n ${TARIFA_FRESH_KEEP:-} ]]; then
			log "kept $W (TARIFA_FRESH_KEEP)"
		else
			log "removing $W"
			rm -rf "$W"
		fi
	fi
	if ((rc == 0)); then
		local p gone=()
		for p in "${HOST_HELD[@]}"; do port_open "$p" || gone+=("$p"); done
		((${#gone[@]} == 0)) || { log "the host's ports ${gone[*]} answered before the test and no longer do"; rc=1; }
	fi
	if ((rc == 0)); then
		log "PASS in $(took 0)"
	else
		log "FAIL after $(took 0) (exit $rc)"
	fi
	exit $rc
}

host() {
	BRIDGES=() HOST_HELD=() NS=
	host_tools
	W=$(mktemp -d /var/tmp/tarifa-fresh.XXXXXX)
	ROOT=$W/root
	trap host_exit EXIT
	trap 'abort 130' INT
	trap 'abort 143' TERM
	mkdir -p "$W/bridge"
	local t=$SECONDS mirror
	log "work directory $W"
	(cd "$REPO" && go mod download && CGO_ENABLED=0 go build -o "$W/tarifa" ./cmd/tarifa) ||
		die "go mod download / go build ./cmd/tarifa failed on the host"
	log "go modules downloaded and tarifa built on the host in $(took "$t")"
	mirror=$(debian_sources | awk '$2 == s {print $1; exit}' s="$SUITE")
	[[ -n $mirror ]] || die "the host's apt has no $SUITE source to debootstrap from"
	make_root "$mirror"
	configure_root
	start_host_bridges
	local p
	HOST_HELD=()
	for p in "${PORTS[@]}"; do port_open "$p" && HOST_HELD+=("$p"); done
	if ((${#HOST_HELD[@]})); then
		log "on the host, ports ${HOST_HELD[*]} are in use (the host's own stack): the root's servers take the same numbers in a network namespace of their own"
	else
		log "on the host, no stack port is in use"
	fi
	# --kill-child: should unshare die, the namespace's first process dies
	# with it, and the kernel ends every other process in the namespace.
	# In the background, so that an interrupt is handled at once (abort)
	# rather than after whatever the root is running.
	unshare --mount --propagation private --net --pid --fork --kill-child --mount-proc \
		"$SELF" --inside "$W" "$(go env GOMODCACHE)" "$SECONDS" &
	NS=$!
	wait "$NS"
}

# abort CODE: an interrupt (Ctrl-C, SIGTERM). A graceful stop could wait
# minutes behind apt or a build, so the namespaces are ended instead:
# killing unshare (by PID) kills the namespace's first process, the kernel
# ends every process in it and drops every mount made there (ClickHouse's
# image included); then host_exit removes the work directory.
abort() {
	trap - INT TERM
	local init i
	if [[ -n ${NS:-} ]] && kill -0 "$NS" 2>/dev/null; then
		log "interrupted: ending the root's namespaces (unshare pid $NS) and every process in them"
		init=$(cat "/proc/$NS/task/$NS/children" 2>/dev/null || true)
		kill -KILL "$NS" 2>/dev/null || true
		wait "$NS" 2>/dev/null || true
		# The namespace is gone when its first process is: the kernel
		# has ended the rest by then.
		for ((i = 0; i < 150; i++)); do
			[[ -n $init && -e /proc/${init// /} ]] || break
			sleep 0.2
		done
	fi
	exit "$1"
}

# ----------------------------------------------------------- namespace side

# in_root CMD...: runs CMD in the root, with the environment a root login
# shell on a new machine has (and GOPROXY=off: see above).
in_root() {
	chroot "$ROOT" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		TARIFA_STACK_DIR=$ROOT_STACK GOPROXY=off "$@"
}

# stack_logs: the tails of the root's stack logs, for a failure.
stack_logs() {
	local f
	for f in "$ROOT$ROOT_STACK"/log/*; do
		[[ -s $f ]] || continue
		printf '==> %s <==\n' "${f#"$ROOT"}" >&2
		tail -n 15 "$f" >&2
	done
}

inside_exit() {
	local rc=$? pid
	trap - EXIT
	if ((rc != 0)); then
		stack_logs
		if [[ -n ${STARTED:-} ]]; then
			log "stopping the root's stack after the failure"
			in_root "$ROOT_REPO/deploy/local/stack.sh" down || true
		fi
	fi
	for pid in "${NS_BRIDGES[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${NS_BRIDGES[@]}"; do wait "$pid" 2>/dev/null || true; done
	if mountpoint -q "$ROOT$ROOT_STACK/clickhouse/data"; then
		umount "$ROOT$ROOT_STACK/clickhouse/data" || umount -l "$ROOT$ROOT_STACK/clickhouse/data" || rc=1
	fi
	if mountpoint -q "$ROOT"; then
		umount -R "$ROOT" 2>/dev/null || { log "a mount under the root was busy; detaching it"; umount -R -l "$ROOT" || rc=1; }
	fi
	if findmnt -rn -o TARGET | grep -q "^$ROOT"; then
		log "still mounted: $(findmnt -rn -o TARGET | grep "^$ROOT" | tr '\n' ' ')"
		rc=1
	elif ((rc == 0)); then
		log "unmounted everything the test mounted (root, /proc, /sys, /dev, repo, Go, module cache)"
	fi
	exit $rc
}

# leftovers: prints the processes of this PID namespace other than this
# shell and its bridges (read without forking, so the scan sees no helper).
leftovers() {
	local d pid argv
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		[[ $pid == 1 || $pid == "$BASHPID" || " ${NS_BRIDGES[*]} " == *" $pid "* ]] && continue
		mapfile -d '' argv <"$d/cmdline" 2>/dev/null || continue
		((${#argv[@]})) && printf '%s: %s\n' "$pid" "${argv[*]}"
	done
}

# smoke: every server of the root's stack answers, through the root's own
# clients (the ones stack.sh installed).
smoke() {
	local out msg
	out=$(in_root psql -h 127.0.0.1 -p 55432 -U postgres -d postgres -Atc 'SELECT version()') ||
		die "postgresql did not answer a query"
	log "postgresql answers: ${out%% on *}"
	out=$(in_root clickhouse-client --host 127.0.0.1 --port 19000 --query 'SELECT version()') ||
		die "clickhouse (native, 19000) did not answer a query"
	log "clickhouse native :19000 answers: version $out"
	out=$(in_root bash -c 'exec 3<>/dev/tcp/127.0.0.1/18123 &&
		printf "GET /?query=SELECT%%20sum(number)%%20FROM%%20numbers(10) HTTP/1.0\r\n\r\n" >&3 && tail -n1 <&3') ||
		die "clickhouse (HTTP, 18123) did not answer"
	[[ $out == 45 ]] || die "clickhouse (HTTP, 18123) answered '$out' to sum(0..9), not 45"
	log "clickhouse HTTP :18123 answers: sum(0..9) = $out"
	msg="fresh-$(date +%s)-$RANDOM"
	printf '%s\n' "$msg" | in_root kcat -q -P -b 127.0.0.1:19092 -t fresh-smoke ||
		die "kcat could not produce to the dev broker"
	out=$(in_root kcat -q -C -b 127.0.0.1:19092 -t fresh-smoke -o beginning -c 1 -e) ||
		die "kcat could not consume from the dev broker"
	[[ $out == "$msg" ]] || die "kcat consumed '$out', produced '$msg'"
	log "kafka :19092 answers: kcat produced and consumed '$msg'"
	{ in_root bash -c "set -a && source $ROOT_STACK/env && set +a && tarifa migrate" 2>&1; } | stamp ||
		die "tarifa migrate failed"
	out=$(in_root psql -h 127.0.0.1 -p 55432 -U postgres -d tarifa -Atc \
		"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") ||
		die "the tarifa database is not in postgresql after migrate"
	((out > 0)) || die "tarifa migrate made no table in postgresql"
	log "tarifa migrate: $out tables in postgresql database tarifa"
	out=$(in_root clickhouse-client --host 127.0.0.1 --port 19000 --query \
		"SELECT count() FROM system.tables WHERE database = 'tarifa'") ||
		die "the tarifa database is not in clickhouse after migrate"
	((out > 0)) || die "tarifa migrate made no table in clickhouse"
	log "tarifa migrate: $out tables in clickhouse database tarifa"
	in_root bash -c "set -a && source $ROOT_STACK/env && set +a && tarifa migrate" >/dev/null 2>&1 ||
		die "a second tarifa migrate failed"
	log "a second tarifa migrate is a no-op that succeeds"
}

inside() {
	W=$1
	ROOT=$W/root
	SECONDS=$3
	local modcache=$2 t img out f p refused
	NS_BRIDGES=()
	trap inside_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	ip link set lo up
	# The root as a mount point of its own, as / is on a machine (stack.sh
	# asks findmnt what filesystem its data lives on).
	mount --bind "$ROOT" "$ROOT"
	mount -t proc proc "$ROOT/proc"
	mount -t sysfs -o ro sysfs "$ROOT/sys"
	mount --rbind /dev "$ROOT/dev"
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/dev/shm"
	mount -o bind,ro "$REPO" "$ROOT$ROOT_REPO"
	mount -o bind,ro /usr/local/go "$ROOT/usr/local/go"
	mount -o bind,ro "$modcache" "$ROOT/root/go/pkg/mod"
	local i=0 host
	while read -r host; do
		i=$((i + 1))
		socat "TCP-LISTEN:${host##*:},bind=127.0.2.$i,fork,reuseaddr" "UNIX-CONNECT:$W/bridge/$i.sock" </dev/null 2>>"$W/bridge.log" &
		NS_BRIDGES+=($!)
	done < <(sed '/:/!s/$/:80/' "$W/bridge/hosts")
	log "namespaces ready: the root has its own /proc, /sys, /dev and loopback"
	for p in "${PORTS[@]}"; do port_open "$p" && die "port $p answers inside the new network namespace before anything started"; done
	for f in /usr/lib/postgresql /usr/sbin/clickhouse-server /usr/bin/clickhouse-server /usr/bin/clickhouse-client /usr/bin/kcat /usr/bin/psql; do
		[[ ! -e $ROOT$f ]] || die "the root is not pristine: it has $f"
	done
	in_root bash -c 'command -v go' >/dev/null && die "the root is not pristine: go is on its PATH"
	log "the root is pristine: $(in_root dpkg-query -W -f '.\n' | wc -l) packages (minbase), no postgresql, clickhouse, kcat, psql, nor go on its PATH; ports ${PORTS[*]} free"

	t=$SECONDS
	log "stack.sh up on the pristine root (first run: installs every package with apt)"
	STARTED=1
	{ in_root "$ROOT_REPO/deploy/local/stack.sh" up 2>&1 >"$W/env.out"; } | stamp ||
		die "the first stack.sh up on a pristine root failed"
	log "first stack.sh up succeeded in $(took "$t"); it printed:"
	sed 's/^/    /' "$W/env.out" >&2
	img=$ROOT$ROOT_STACK/clickhouse.img
	if mountpoint -q "$ROOT$ROOT_STACK/clickhouse/data"; then
		log "clickhouse data is on the journaled image $(losetup -j "$img" | cut -d: -f1) ($(du -h "$img" | cut -f1) used of $(du -h --apparent-size "$img" | cut -f1))"
	else
		log "clickhouse data is on the plain directory (no journal-less ext4 under the root)"
	fi

	t=$SECONDS
	out=$(in_root "$ROOT_REPO/deploy/local/stack.sh" up 2>&1 >/dev/null) || die "a second stack.sh up failed: $out"
	[[ $(grep -c 'already running' <<<"$out") == 3 ]] || die "a second stack.sh up did not reuse the three servers: $out"
	log "second stack.sh up reused all three servers in $(took "$t")"

	smoke

	in_root "$ROOT_REPO/deploy/local/stack.sh" status | stamp
	{ in_root "$ROOT_REPO/deploy/local/stack.sh" down 2>&1; } | stamp || die "stack.sh down failed"
	STARTED=
	out=$(in_root "$ROOT_REPO/deploy/local/stack.sh" status)
	[[ $(grep -c stopped <<<"$out") == 3 ]] || die "after down, status says: $out"
	out=$(leftovers)
	[[ -z $out ]] || die "processes left after stack.sh down: $out"
	log "stack.sh down stopped everything: no process of the root is left"
	if mountpoint -q "$ROOT$ROOT_STACK/clickhouse/data"; then
		umount "$ROOT$ROOT_STACK/clickhouse/data" || die "could not unmount the clickhouse image"
		[[ -z $(losetup -j "$img") ]] || die "the clickhouse image is still attached to a loop device"
		log "clickhouse image unmounted and its loop device released"
	fi

	# The port preflight: a stranger on the broker's port, and up starts nothing.
	socat -u TCP-LISTEN:19092,bind=127.0.0.1,reuseaddr,fork OPEN:/dev/null </dev/null 2>/dev/null &
	NS_BRIDGES+=($!)
	for ((i = 0; i < 50; i++)); do port_open 19092 && break; sleep 0.1; done
	refused=$(in_root "$ROOT_REPO/deploy/local/stack.sh" up 2>&1) && die "stack.sh up started with a stranger on port 19092: $refused"
	grep -q 'port 19092 (Kafka) is taken' <<<"$refused" || die "stack.sh up failed, but not for the taken port: $refused"
	out=$(in_root "$ROOT_REPO/deploy/local/stack.sh" status)
	[[ $(grep -c stopped <<<"$out") == 3 ]] || die "stack.sh up refused a taken port but started something: $out"
	! mountpoint -q "$ROOT$ROOT_STACK/clickhouse/data" || die "stack.sh up refused a taken port but mounted the clickhouse image"
	log "with a stranger on port 19092, stack.sh up refused and started nothing; it said:"
	stamp <<<"$refused"
}

case "${1:-}" in
--inside) inside "$2" "$3" "$4" ;;
"") host ;;
*) echo "usage: $0" >&2; exit 2 ;;
esac
