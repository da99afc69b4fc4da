#!/bin/sh
# rgw.sh — a throw-away S3 server for the tests: a one-node Ceph cluster
# (one monitor, one OSD on memstore, pools of size 1) and radosgw on
# 127.0.0.1:<a free port>, all under DIR, with no systemd and nothing
# outside DIR.
#
#	sh tests/services/rgw.sh check       can it run here? (else why not)
#	sh tests/services/rgw.sh start DIR   make and start, write DIR/rgw.env,
#	                                     print its path
#	sh tests/services/rgw.sh halt DIR    stop radosgw only (see below)
#	sh tests/services/rgw.sh kill DIR    kill radosgw only, as in a crash
#	sh tests/services/rgw.sh stop DIR    stop all, remove its files
#	sh tests/services/rgw.sh status DIR  all running? (exit status)
#
# start and stop are idempotent: start on a running cluster only writes
# DIR/rgw.env again; start after halt brings radosgw back on the same
# port. halt (SIGTERM, radosgw's clean shutdown, ~4 s) and kill (SIGKILL)
# stop radosgw alone, never the OSD: memstore keeps objects in the OSD's
# memory, so the OSD's end is the data's end. A test takes the object
# store away with halt or kill and gives it back with start.
#
# DIR/rgw.env, shell assignments that `. DIR/rgw.env` exports
# (tests/services/services.py reads it too):
#
#	MREG_S3_ENDPOINT=http://127.0.0.1:PORT
#	MREG_S3_BUCKET=mreg		created empty by the first start
#	MREG_S3_REGION=us-east-1
#	AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...	user 'mreg'
#	MREG_RGW_PID=... MREG_RGW_PORT=...
#
# The cluster runs without cephx (auth none: only loopback clients, and
# S3 requests are still signed with the user's keys). memstore holds at
# most MREG_RGW_MEMSTORE_BYTES (default 1 GiB) of objects in memory.
set -u
svc_name=rgw
. "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: rgw.sh check | start|halt|kill|stop|status DIR" >&2
	exit 2
}

why_not() {
	for _b in monmaptool ceph-mon ceph-osd radosgw radosgw-admin ceph \
		  curl; do
		command -v "$_b" >/dev/null 2>&1 && continue
		echo "no '$_b' (apt-get install ceph-mon ceph-osd radosgw" \
			"ceph-common curl)"
		return
	done
	[ -x /usr/bin/python3 ] || echo "no /usr/bin/python3"
}

# fail LOG MESSAGE: the end of LOG, then MESSAGE, and exit 1.
fail() {
	[ -r "$1" ] && tail -n 15 "$1" | sed 's/^/  | /' >&2
	svc_die "$2 (log: $1)"
}

setup_paths() {
	[ -n "${1:-}" ] || usage
	D=$(svc_dir "$1") || exit 1
	C=$D/rgw
	CONF=$C/ceph.conf
	RUN=$C/run
	ENV=$D/rgw.env
}

ceph_() {
	ceph -c "$CONF" --connect-timeout 10 "$@"
}

mon_pid() { svc_pidfile_pid "$RUN/mon.a.pid" "$CONF"; }
osd_pid() { svc_pidfile_pid "$RUN/osd.0.pid" "$CONF"; }
rgw_pid() { svc_pidfile_pid "$RUN/client.rgw.pid" "$CONF"; }

osd_up() {
	ceph_ osd dump 2>/dev/null | grep -q '^osd\.0 up'
}

rgw_answers() {
	curl -s -o /dev/null -m 2 "http://127.0.0.1:$rgw_port/"
}

make_cluster() {
	why=$(why_not)
	[ -z "$why" ] || svc_die "$why"
	mkdir -p "$D" || svc_die "cannot create '$D'"
	rm -rf "$C"
	mkdir -m 700 "$C" "$RUN" "$C/log" "$C/mon.a" "$C/osd.0" ||
		svc_die "cannot create '$C'"
	fsid=$(cat /proc/sys/kernel/random/uuid)
	mon_port=$(svc_free_port) && rgw_port=$(svc_free_port) ||
		svc_die "no free port"
	cat >"$CONF" <<-EOF
	# tests/services/rgw.sh: a throw-away one-node cluster
	[global]
	fsid = $fsid
	mon host = v2:127.0.0.1:$mon_port
	public addr = 127.0.0.1
	ms bind ipv6 = false
	ms bind msgr1 = false
	auth cluster required = none
	auth service required = none
	auth client required = none
	# auth none has no session key, so no "secure" connection mode
	ms mon client mode = crc
	ms mon service mode = crc
	ms mon cluster mode = crc
	ms client mode = crc
	ms service mode = crc
	ms cluster mode = crc
	run dir = $RUN
	pid file = $RUN/\$name.pid
	admin socket = $RUN/\$name.asok
	log file = $C/log/\$name.log
	log to stderr = false
	err to stderr = false
	mon data = $C/mon.\$id
	osd data = $C/osd.\$id
	osd objectstore = memstore
	memstore device bytes = ${MREG_RGW_MEMSTORE_BYTES:-1073741824}
	osd pool default size = 1
	osd pool default min size = 1
	osd pool default pg num = 1
	osd pool default pgp num = 1
	rgw rados pool pg num min = 1
	# Pools are made one after the other (radosgw makes 7): the
	# monitor's default of a 1 s pause before each change would make
	# start-up several seconds longer.
	paxos propose interval = 0.05
	osd pool default pg autoscale mode = off
	osd crush chooseleaf type = 0
	mon allow pool size one = true
	mon allow pool delete = true
	mon warn on pool no redundancy = false
	# A radosgw killed (rgw.sh kill) leaves its watches on the control
	# objects; a metadata change (a new bucket) waits for them to time
	# out: 30 s by default.
	osd client watch timeout = 5
	osd max object name len = 460
	osd max object namespace len = 64
	client mount timeout = 20
	rados mon op timeout = 20
	[client.rgw]
	rgw frontends = beast endpoint=127.0.0.1:$rgw_port
	rgw dns name = localhost
	EOF
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" \
		"$C/monmap" >"$C/log/mkfs.log" 2>&1 &&
	ceph-mon -c "$CONF" --mkfs -i a --monmap "$C/monmap" \
		>>"$C/log/mkfs.log" 2>&1 ||
		fail "$C/log/mkfs.log" "cannot make the monitor"
	start_mon
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	id=$(ceph_ osd new "$osd_uuid" 2>>"$C/log/mkfs.log") && [ "$id" = 0 ] ||
		fail "$C/log/mkfs.log" "cannot add osd.0"
	ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" \
		>>"$C/log/mkfs.log" 2>&1 ||
		fail "$C/log/mkfs.log" "cannot make osd.0"
	start_osd
	start_rgw
	access=$(od -An -N10 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
	secret=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
	radosgw-admin -c "$CONF" user create --uid=mreg --display-name=mreg \
		--access-key="$access" --secret="$secret" \
		>"$C/log/user.log" 2>&1 ||
		fail "$C/log/user.log" "cannot create the S3 user"
	printf '%s\n%s\n' "$access" "$secret" >"$C/keys"
	chmod 600 "$C/keys"
	code=$(curl -s -o "$C/log/bucket.log" -w '%{http_code}' -X PUT \
		--aws-sigv4 aws:amz:us-east-1:s3 --user "$access:$secret" \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
		"http://127.0.0.1:$rgw_port/mreg")
	[ "$code" = 200 ] ||
		fail "$C/log/bucket.log" "cannot create bucket mreg: HTTP $code"
}

start_mon() {
	mon_pid >/dev/null && return
	ceph-mon -c "$CONF" -i a >>"$C/log/start.log" 2>&1 ||
		fail "$C/log/mon.a.log" "ceph-mon did not start"
	svc_wait 30 ceph_ mon stat ||
		fail "$C/log/mon.a.log" "ceph-mon does not answer"
}

start_osd() {
	osd_pid >/dev/null && return
	ceph-osd -c "$CONF" -i 0 >>"$C/log/start.log" 2>&1 ||
		fail "$C/log/osd.0.log" "ceph-osd did not start"
	svc_wait 60 osd_up ||
		fail "$C/log/osd.0.log" "osd.0 is not up"
}

start_rgw() {
	rgw_port=$(sed -n 's/^rgw frontends = .*:\([0-9]*\)$/\1/p' "$CONF")
	rgw_pid >/dev/null && return
	radosgw -c "$CONF" -n client.rgw >>"$C/log/start.log" 2>&1 ||
		fail "$C/log/client.rgw.log" "radosgw did not start"
	svc_wait 60 rgw_answers ||
		fail "$C/log/client.rgw.log" \
			"radosgw does not answer on port $rgw_port"
}

write_env() {
	rgw_port=$(sed -n 's/^rgw frontends = .*:\([0-9]*\)$/\1/p' "$CONF")
	access=$(sed -n 1p "$C/keys")
	secret=$(sed -n 2p "$C/keys")
	cat >"$ENV.tmp" <<-EOF
	# radosgw for mreg's tests: sh tests/services/rgw.sh stop $D
	MREG_S3_ENDPOINT=http://127.0.0.1:$rgw_port
	MREG_S3_BUCKET=mreg
	MREG_S3_REGION=us-east-1
	AWS_ACCESS_KEY_ID=$access
	AWS_SECRET_ACCESS_KEY=$secret
	MREG_RGW_PORT=$rgw_port
	MREG_RGW_PID=$(rgw_pid)
	export MREG_S3_ENDPOINT MREG_S3_BUCKET MREG_S3_REGION
	export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY MREG_RGW_PORT MREG_RGW_PID
	EOF
	chmod 600 "$ENV.tmp"
	mv "$ENV.tmp" "$ENV"
}

do_start() {
	# A dead OSD took its memstore, and the objects, with it: a cluster
	# whose OSD is gone is made again from nothing.
	if [ -f "$C/keys" ] && osd_pid >/dev/null; then
		start_mon
		start_rgw
	else
		do_stop
		# A start that fails half-way leaves nothing running.
		trap 'do_stop' EXIT
		make_cluster
		trap - EXIT
	fi
	write_env
	echo "$ENV"
}

# halt: radosgw's own shutdown (SIGTERM) takes ~4 s; kill: at once.
rgw_stop() {
	pid=$(rgw_pid) || return 0
	svc_stop_pid "$pid" "$1" 20
}
do_halt() { rgw_stop TERM; }
do_kill() { rgw_stop KILL; }

# Nothing of the cluster outlives stop, so nothing needs a clean
# shutdown: SIGKILL, by PID, radosgw first.
do_stop() {
	for _n in client.rgw osd.0 mon.a; do
		pid=$(svc_pidfile_pid "$RUN/$_n.pid" "$CONF") || continue
		svc_stop_pid "$pid" KILL 10
	done
	rm -rf "$C" "$ENV" "$ENV.tmp"
	rmdir "$D" 2>/dev/null
	return 0
}

do_status() {
	mon_pid >/dev/null && osd_pid >/dev/null && rgw_pid >/dev/null
}

svc_main "$@"
