# tests/sh/lib.sh - what the shell tests share; sourced, never run alone.
#
#   . tests/sh/lib.sh        (from the repository root, after set -u)
#
# Gives: fails (the count of failed checks), tmp (a private folder removed at
# exit, with every process in pids killed), check and verdict to record
# checks, and serve_start to run `petcut serve` on a free port; for tests of
# several instances, petcut_start (serve or worker, by name), metric, need,
# free_port, and s3rver and redis-server on loopback (s3_start, s3_stop,
# redis_start, redis_stop; need_s3rver first), or Ceph's S3 gateway
# (rgw_start after need_rgw; s3api, s3_keys and s3_uploads ask it).

fails=0
pids=()
declare -A petcut_logs=() # pid -> stderr of each petcut started by lib_launch
tmp=$(mktemp -d "${TMPDIR:-/tmp}/petcut-test.XXXXXX") || exit 1

# lib_stop PID: stops a petcut the test started (lib_launch) as its operator
# would (SIGTERM), waits up to 60 s for it, and says "not ok" (counted in
# fails) unless it exits 0; and, stopped here or by the test, unless its log
# holds no sanitizer or valgrind report.
lib_stop() {
	local p=$1 log=${petcut_logs[$1]:-} rc=0
	# only a child still running (one the test stopped and waited for may
	# have left its number to another process)
	if jobs -pr | grep -qx "$p" && kill -TERM "$p" 2>/dev/null; then
		for _ in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
		rc=$?
		[ "$rc" = 0 ] || { echo "not ok - petcut (pid $p) exits 0 on SIGTERM (it exited $rc)"; fails=$((fails + 1)); }
	fi
	lib_forget "$p"
	if [ -n "$log" ] && grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |==[0-9]+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param)|definitely lost: [1-9]' "$log"; then
		echo "not ok - petcut (pid $p) ran without a sanitizer or valgrind report:"
		grep -E -m 5 'ERROR: |runtime error: |==[0-9]+== ' "$log" | sed 's/^/    /'
		fails=$((fails + 1))
	fi
	unset "petcut_logs[$p]"
}

# At exit every petcut still running is stopped through lib_stop (a test
# whose servers do not stop cleanly fails), and whatever else it started
# (s3rver, redis-server) is killed. The test's exit status stays, unless a
# server failed; a trap of the test's own that runs this passes its status.
lib_cleanup() {
	local rc=${1:-$?} before=$fails p
	for p in "${!petcut_logs[@]}"; do lib_stop "$p"; done
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
	if [ "$fails" -gt "$before" ]; then
		echo "$((fails - before)) more failed when its servers stopped"
		exit 1
	fi
	exit "$rc"
}
trap lib_cleanup EXIT

# check DESCRIPTION COMMAND...: runs one command, records ok / not ok.
check() {
	local what=$1
	shift
	if "$@"; then echo "ok - $what"; else echo "not ok - $what"; fails=$((fails + 1)); fi
}

# verdict STATUS DESCRIPTION: records a check made by the command list just
# before it ({ a && b; }; verdict $? "...").
verdict() {
	if [ "$1" = 0 ]; then echo "ok - $2"; else echo "not ok - $2"; fails=$((fails + 1)); fi
}

# serve_start [SERVE OPTIONS]: `petcut serve` on a free port of 127.0.0.1,
# its stdout in $tmp/out and stderr in $tmp/log; its URL in $A, its pid in
# $pid (and in pids). Exits the test if it does not start within
# $start_seconds (default 60: serve prepares its plans before it listens,
# seconds on a slow shared machine; only a server that never starts waits
# that long). A command in the array launcher (e.g. valgrind and its
# options) runs petcut.
launcher=()
start_seconds=60
serve_start() {
	lib_launch "$tmp/out" "$tmp/log" serve "$@"
	pid=$launched_pid
	A=$launched_url
}

# lib_launch OUT LOG CMD [OPTIONS]: `petcut CMD --listen 127.0.0.1:0 OPTIONS`
# through launcher, stdout to OUT and stderr to LOG; its pid in launched_pid
# (and in pids), its URL in launched_url once it prints it. Exits the test
# if it does not within start_seconds.
lib_launch() {
	local out=$1 log=$2 cmd=$3
	shift 3
	: >"$out" # emptied here, not in the child: no earlier instance's address is read
	"${launcher[@]}" "$PETCUT" "$cmd" --listen 127.0.0.1:0 "$@" >"$out" 2>"$log" &
	launched_pid=$!
	pids+=("$launched_pid")
	petcut_logs[$launched_pid]=$log
	for _ in $(seq $((start_seconds * 10))); do
		launched_url=$(sed -n 's/^listening on //p' "$out")
		[ -n "$launched_url" ] && return 0
		sleep 0.1
	done
	echo "petcut $cmd did not start:"
	cat "$log"
	exit 1
}

# finish: the last line and the exit status of a test.
finish() {
	[ "$fails" -eq 0 ] && echo "all passed" || echo "$fails failed"
	[ "$fails" -eq 0 ]
}

# ===== Servers beside petcut: s3rver and redis-server on loopback =====

# need CMD...: skips the test (77) unless every command is installed.
need() {
	for c in "$@"; do
		command -v "$c" >/dev/null || { echo "skip: $c is not installed (scripts/install-deps.sh installs it)"; exit 77; }
	done
}

# cpu_has FLAG: whether this CPU has FLAG (as /proc/cpuinfo names it:
# avx512_bf16, avx512_vnni...), for the skips CI allows (tests/skips-allowed).
cpu_has() {
	grep -qw "$1" /proc/cpuinfo
}

# b64sha FILE: its SHA-256 in base64 (Upload-Checksum, Content-Digest).
b64sha() {
	python3 -c "import base64,hashlib,sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1],'rb').read()).digest()).decode())" "$1"
}

# all_ready URL...: waits up to 10 s until the /readyz of every petcut at
# URL answers 200 with status "ready"; 1 if one never does.
all_ready() {
	local u out ok
	for _ in $(seq 50); do
		ok=1
		for u in "$@"; do
			out=$(curl -s --max-time 2 -w '\n%{http_code}' "$u/readyz")
			{ [ "${out##*$'\n'}" = 200 ] &&
				[ "$(printf '%s' "${out%$'\n'*}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)" = ready ]; } ||
				{ ok=0; break; }
		done
		[ $ok = 1 ] && return 0
		sleep 0.2
	done
	return 1
}

# free_port: a TCP port of 127.0.0.1 that nothing listens on now (another
# process may take it before it is used: redis_start checks).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# readme_run NAME DIR: runs the README's copy-paste block NAME (the ```sh
# block after the line "<!-- block: NAME ... -->") in DIR with bash -e, as a
# user pastes it; its output in $tmp/block-NAME.log. As root, sudo runs its
# command as it is; systemctl is not run (these machines have no systemd as
# their init) and says so; a test may define podman (or other commands) as
# functions first, to add what this machine needs. Returns the block's
# status.
readme_run() {
	local name=$1 dir=$2 text
	text=$(awk -v n="$name" '$0 ~ "^<!-- block: " n " " {on = 1; next} on && /^```sh$/ {body = 1; next}
		body && /^```$/ {exit} body {print}' "$ROOT/README.md")
	[ -n "$text" ] || { echo "# the README has no block $name"; return 1; }
	echo "# README block $name:"
	sed 's/^/#   /' <<<"$text"
	sudo() { # as root: VAR=VALUE... COMMAND as it is (a function too)
		[ "$(id -u)" = 0 ] || { command sudo "$@"; return; }
		local vars=()
		while [[ $1 == [A-Za-z_]*=* ]]; do vars+=("$1"); shift; done
		( [ ${#vars[@]} = 0 ] || export "${vars[@]}"; "$@" )
	}
	systemctl() { echo "# systemctl $*: not run here (no systemd as init on this machine)"; }
	(cd "$dir" && bash -e -c "$(declare -f sudo systemctl podman 2>/dev/null)
$text") >"$tmp/block-$name.log" 2>&1
}

# lib_forget PID: PID is gone (waited for), so that the cleanup at exit
# never signals a process that reused its number.
lib_forget() {
	local keep=() p
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}

# need_s3rver: skips the test (77) without node or s3rver (scripts/test-setup.sh
# installs it under BUILD/s3-tests; PETCUT_S3RVER names another s3rver.js).
need_s3rver() {
	need node
	S3JS=${PETCUT_S3RVER:-$BUILD/s3-tests/node_modules/s3rver/bin/s3rver.js}
	[ -f "$S3JS" ] || { echo "skip: no s3rver at $S3JS (scripts/test-setup.sh installs it)"; exit 77; }
}

# s3_start [PORT]: s3rver keeping its objects under $tmp/s3 (an object KEY of
# the bucket $S3_BUCKET, default petcut, is $tmp/s3/BUCKET/KEY._S3rver_object),
# on PORT (0 or none: a free one); its port in $S3PORT, its pid in $s3_pid.
# Exports the AWS settings s3rver takes (it accepts any well-formed
# signature) and clears the AWS endpoint variables and TMPDIR. Exits the test
# if it does not start (e.g. PORT was taken meanwhile).
s3_start() {
	S3_BUCKET=${S3_BUCKET:-petcut}
	mkdir -p "$tmp/s3"
	: >"$tmp/s3.log"
	node "$S3JS" -d "$tmp/s3" -a 127.0.0.1 -p "${1:-0}" -s --configure-bucket "$S3_BUCKET" >"$tmp/s3.log" 2>&1 &
	s3_pid=$!
	pids+=("$s3_pid")
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
	unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 TMPDIR
	for _ in $(seq 300); do
		S3PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/s3.log" | head -1)
		[ -n "$S3PORT" ] && return 0
		kill -0 "$s3_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "s3rver did not start on port ${1:-0}:"
	cat "$tmp/s3.log"
	exit 1
}

# lib_kill PID: kills PID (SIGKILL: it stops as if its machine went away),
# reaps it and drops it from pids.
lib_kill() {
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	lib_forget "$1"
	unset "petcut_logs[$1]"
}

# s3_stop: kills s3rver.
s3_stop() {
	lib_kill "$s3_pid"
}

# ===== Ceph's S3 gateway: the whole multipart API =====
#
# s3rver has no ListMultipartUploads nor AbortMultipartUpload. radosgw, the
# S3 gateway of Ceph (Debian's radosgw), has all of S3's multipart calls,
# checks what real S3 checks (parts of at least 5 MiB but the last) and
# needs a cluster under it: here one monitor and one OSD that keeps its
# objects in memory, nothing shared with the machine's own Ceph (every path
# under $tmp/ceph, ports chosen free), no authentication between the daemons.

# need_rgw: skips the test (77) without Ceph's monitor, OSD and gateway.
need_rgw() {
	need ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool uuidgen curl
}

# rgw_start: that cluster and radosgw on 127.0.0.1; its port in $S3PORT;
# the user's keys exported as the AWS settings; the bucket $S3_BUCKET
# (default petcut) made. Every daemon runs in the foreground as a child
# (killed at exit). Exits the test if one does not start.
rgw_start() {
	local d=$tmp/ceph fsid mon osd_uuid id
	S3_BUCKET=${S3_BUCKET:-petcut}
	mkdir -p "$d/run" "$d/log" "$d/mon" "$d/osd"
	fsid=$(uuidgen)
	mon=$(free_port)
	S3PORT=$(free_port)
	cat >"$d/ceph.conf" <<-EOF
		[global]
		fsid = $fsid
		mon host = v1:127.0.0.1:$mon
		public addr = 127.0.0.1
		ms bind ipv6 = false
		auth cluster required = none
		auth service required = none
		auth client required = none
		run dir = $d/run
		admin socket = $d/run/\$name.asok
		log file = $d/log/\$name.log
		keyring = $d/keyring
		osd pool default size = 1
		osd pool default min size = 1
		osd pool default pg num = 8
		osd pool default pgp num = 8
		osd pool default pg autoscale mode = off
		osd crush chooseleaf type = 0
		mon allow pool size one = true
		mon warn on pool no redundancy = false
		mon data avail warn = 1
		mon data avail crit = 0
		[mon]
		mon data = $d/mon
		[osd]
		osd data = $d/osd
		osd objectstore = memstore
		memstore device bytes = 1073741824
		[client.rgw]
		rgw frontends = beast endpoint=127.0.0.1:$S3PORT
		rgw data = $d/rgw
	EOF
	CEPH_CONF=$d/ceph.conf
	export CEPH_CONF
	{
		monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon]" "$d/monmap" &&
			ceph-authtool --create-keyring "$d/keyring" --gen-key -n mon. --cap mon 'allow *' &&
			ceph-mon --mkfs -i a --monmap "$d/monmap"
	} >"$d/log/setup.log" 2>&1 || { echo "the Ceph monitor could not be made:"; cat "$d/log/setup.log"; exit 1; }
	ceph-mon -f -i a >>"$d/log/setup.log" 2>&1 &
	pids+=("$!")
	osd_uuid=$(uuidgen)
	id=$(timeout 60 ceph --connect-timeout 60 osd new "$osd_uuid" 2>>"$d/log/setup.log")
	{ [ -n "$id" ] && ceph-osd -i "$id" --mkfs --osd-uuid "$osd_uuid"; } >>"$d/log/setup.log" 2>&1 ||
		{ echo "the Ceph OSD could not be made:"; cat "$d/log/setup.log"; exit 1; }
	# the OSD is up once it says it is active; Ceph 16's OSD may stop at its
	# start (a command to the monitor before it knows the cluster's fsid:
	# "wrong fsid"), and is started again
	local pid up=0
	for _ in 1 2 3; do
		ceph-osd -f -i "$id" >>"$d/log/setup.log" 2>&1 &
		pid=$!
		pids+=("$pid")
		for _ in $(seq 600); do
			grep -q 'state: booting -> active' "$d/log/osd.$id.log" 2>/dev/null && { up=1; break 2; }
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		lib_kill "$pid"
	done
	[ $up = 1 ] || { echo "the Ceph OSD did not start:"; tail -20 "$d/log/osd.$id.log"; exit 1; }
	radosgw -f -n client.rgw >>"$d/log/setup.log" 2>&1 &
	rgw_pid=$!
	pids+=("$rgw_pid")
	for _ in $(seq 600); do
		curl -s -o /dev/null -m 1 "http://127.0.0.1:$S3PORT/" && break
		kill -0 "$rgw_pid" 2>/dev/null || break
		sleep 0.1
	done
	export AWS_ACCESS_KEY_ID=petcut AWS_SECRET_ACCESS_KEY=petcut-test-secret AWS_REGION=us-east-1
	unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 TMPDIR
	radosgw-admin user create --uid petcut --display-name petcut \
		--access-key "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" >>"$d/log/setup.log" 2>&1 &&
		[ "$(s3api -X PUT -o /dev/null -w '%{http_code}' "/$S3_BUCKET")" = 200 ] ||
		{ echo "radosgw did not start on port $S3PORT:"; tail -20 "$d/log/setup.log" "$d/log/client.rgw.log"; exit 1; }
	# radosgw makes its data pools at their first use, which takes seconds:
	# an object and a multipart upload made and dropped here make them
	local upload
	s3api -X PUT --data-binary warm -o /dev/null "/$S3_BUCKET/warm" &&
		s3api -X DELETE -o /dev/null "/$S3_BUCKET/warm" &&
		upload=$(s3api -X POST "/$S3_BUCKET/warm?uploads=" | sed -n 's:.*<UploadId>\(.*\)</UploadId>.*:\1:p') &&
		[ -n "$upload" ] && s3api -X DELETE -o /dev/null "/$S3_BUCKET/warm?uploadId=$upload" &&
		[ -z "$(s3_uploads)" ] || { echo "radosgw does not store objects:"; tail -20 "$d/log/client.rgw.log"; exit 1; }
}

# s3api [CURL OPTIONS] PATH: one signed request to the S3 server ($S3PORT,
# the AWS keys) through curl's SigV4; a query string in PATH is written as
# SigV4 has it (each parameter with "=", values percent-encoded).
s3api() {
	local path=${*: -1}
	curl -s --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "${@:1:$#-1}" "http://127.0.0.1:$S3PORT$path"
}

# s3_keys PREFIX: the keys of the bucket's objects under PREFIX, one a line.
s3_keys() {
	s3api "/$S3_BUCKET?list-type=2&prefix=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")" |
		grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g'
}

# s3_uploads: the keys of the bucket's multipart uploads in progress
# (ListMultipartUploads), one a line.
s3_uploads() {
	s3api "/$S3_BUCKET?uploads=" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g'
}

# redis_start [PORT]: redis-server without persistence on PORT, or on a free
# port; its port in $RPORT, its pid in $redis_pid. The server that answers
# must be the one started here (INFO's process_id): a port another test's
# server took between free_port and the start, or while this one was
# stopped, would otherwise mix two tests' keys, streams and consumer groups.
# Without PORT it tries other ports; with PORT (a restart) it exits the test.
redis_start() {
	local want=${1:-}
	for _ in 1 2 3 4 5; do
		RPORT=${want:-$(free_port)}
		redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
			>"$tmp/redis.log" 2>&1 &
		redis_pid=$!
		pids+=("$redis_pid")
		for _ in $(seq 100); do
			kill -0 "$redis_pid" 2>/dev/null || break
			if [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ]; then
				[ "$(redis-cli -p "$RPORT" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')" = "$redis_pid" ] &&
					return 0
				break
			fi
			sleep 0.1
		done
		lib_kill "$redis_pid"
		[ -n "$want" ] && break
	done
	echo "redis-server did not start on port $RPORT (or another server answers there):"
	cat "$tmp/redis.log"
	exit 1
}

# redis_stop: kills redis-server (it keeps nothing).
redis_stop() {
	lib_kill "$redis_pid"
}

# petcut_start NAME CMD [OPTIONS]: `petcut CMD --listen 127.0.0.1:0 OPTIONS`
# (serve or worker), its stdout in $tmp/out-NAME and stderr in
# $tmp/log-NAME; its URL in the variable NAME, its pid in pid_NAME (and in
# pids). Exits the test if it does not start.
petcut_start() {
	local name=$1 cmd=$2 url
	shift 2
	lib_launch "$tmp/out-$name" "$tmp/log-$name" "$cmd" "$@"
	eval "pid_$name=\$launched_pid $name=\$launched_url"
}

# metric URL 'NAME{LABELS}': the value of one series of URL/metrics (0 when
# it is absent).
metric() {
	curl -s "$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}
