#!/bin/sh
# pg.sh — a throw-away PostgreSQL for the tests: a cluster of its own
# under DIR, on a Unix socket in DIR and on 127.0.0.1:<a free port>, run
# by an unprivileged user (the `postgres` system user when run as root),
# with no systemd and nothing outside DIR.
#
#	sh tests/services/pg.sh check       can it run here? (else why not)
#	sh tests/services/pg.sh start DIR   init if needed, start, write
#	                                    DIR/pg.env, print its path
#	sh tests/services/pg.sh halt DIR    stop the server, keep its data
#	sh tests/services/pg.sh stop DIR    stop it and remove its files
#	sh tests/services/pg.sh status DIR  running? (exit status)
#
# start and stop are idempotent: start on a running instance only writes
# DIR/pg.env again; start after halt brings the same cluster back on the
# same port (for tests that take the database away under readers and
# writers). DIR/pg.env has the connection as shell assignments that
# `. DIR/pg.env` exports (tests/services/services.py reads it too):
#
#	PGHOST=DIR/pg/sock PGPORT=... PGDATABASE=mreg PGUSER=mreg
#	PGPASSWORD=...			the role's password (random)
#	MREG_PG_HOSTADDR=127.0.0.1	the same server over TCP
#	MREG_PG_PASSFILE=DIR/pg/pgpass	a .pgpass-style file (mode 0600)
#	MREG_PG_PID=...			the postmaster
#
# The role `mreg` owns the database `mreg` and logs in with its password
# (scram-sha-256) over the socket and TCP; the cluster's superuser logs
# in over the socket by peer authentication only (psql run as the
# runtime user). fsync is off: the data lives as long as the test.
set -u
svc_name=pg
. "$(dirname "$0")/lib.sh"

PGBIN=${MREG_PG_BIN:-/usr/lib/postgresql/15/bin}

usage() {
	echo "usage: pg.sh check | start|halt|stop|status DIR" >&2
	exit 2
}

# Why this machine cannot run the server, or nothing.
why_not() {
	[ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] ||
		{ echo "no PostgreSQL server in $PGBIN" \
			"(apt-get install postgresql)"; return; }
	command -v psql >/dev/null 2>&1 ||
		{ echo "no psql (apt-get install postgresql-client)"; return; }
	if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
		echo "run as root, and no user 'postgres' to run the server"
	fi
}

# as_runner COMMAND...: runs COMMAND as the user that owns the cluster.
as_runner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

setup_paths() {
	[ -n "${1:-}" ] || usage
	D=$(svc_dir "$1") || exit 1
	P=$D/pg
	DATA=$P/data
	SOCK=$P/sock
	ENV=$D/pg.env
}

postmaster_pid() {
	svc_pidfile_pid "$DATA/postmaster.pid" "$DATA"
}

# The socket path must fit in sun_path (108 bytes with its NUL).
check_socket_len() {
	_s="$SOCK/.s.PGSQL.65535"
	[ ${#_s} -le 107 ] ||
		svc_die "socket path '$_s' is over 107 bytes: use a shorter DIR"
}

# open_path DIR: the server (user postgres) must reach DIR. A temp dir
# made by mktemp -d is private to root: let postgres through it (search
# only: it cannot list it) when it lies under $TMPDIR or /tmp; anywhere
# else, refuse rather than open a private directory of the caller's.
open_path() {
	_d=$1
	while ! runuser -u postgres -- test -x "$_d"; do
		# The topmost directory on the way that postgres cannot enter.
		_up=$_d
		while [ "$_up" != / ] &&
		      ! runuser -u postgres -- test -x "$(dirname "$_up")"; do
			_up=$(dirname "$_up")
		done
		case $_up in
		"${TMPDIR:-/tmp}"/?* | /tmp/?*) chmod o+x "$_up" ;;
		*) svc_die "user postgres cannot enter '$_up':" \
			"use a DIR under ${TMPDIR:-/tmp}" ;;
		esac
	done
}

init_cluster() {
	why=$(why_not)
	[ -z "$why" ] || svc_die "$why"
	check_socket_len
	mkdir -p "$D" || svc_die "cannot create '$D'"
	rm -rf "$P"
	mkdir -m 700 "$P" "$SOCK" || svc_die "cannot create '$P'"
	if [ "$(id -u)" = 0 ]; then
		chown -R postgres: "$P"
		open_path "$P"
	fi
	port=$(svc_free_port) || svc_die "no free port"
	pass=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$pass" >"$P/password"
	chmod 600 "$P/password"
	[ "$(id -u)" = 0 ] && chown postgres: "$P/password"
	as_runner "$PGBIN/initdb" -D "$DATA" --auth=scram-sha-256 --no-sync \
		--pwfile="$P/password" -E UTF8 --locale=C.UTF-8 \
		>"$P/initdb.log" 2>&1 ||
		{ cat "$P/initdb.log" >&2; svc_die "initdb failed"; }
	su=$(as_runner id -un)
	# The superuser: peer over the socket only. Everyone else:
	# a password, over the socket or loopback TCP.
	cat >"$DATA/pg_hba.conf" <<-EOF
	local	all	$su			peer
	local	all	all			scram-sha-256
	host	all	all	127.0.0.1/32	scram-sha-256
	EOF
	cat >>"$DATA/postgresql.conf" <<-EOF

	# tests/services/pg.sh: a throw-away cluster
	listen_addresses = '127.0.0.1'
	port = $port
	unix_socket_directories = '$SOCK'
	max_connections = ${MREG_PG_MAX_CONNECTIONS:-300}
	shared_buffers = 32MB
	fsync = off
	full_page_writes = off
	logging_collector = off
	log_min_messages = warning
	EOF
	start_server
	as_runner psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$port" \
		-U "$su" -d postgres \
		-c "CREATE ROLE mreg LOGIN PASSWORD '$pass'" \
		-c "CREATE DATABASE mreg OWNER mreg" >"$P/setup.log" 2>&1 ||
		{ cat "$P/setup.log" >&2; svc_die "cannot create role mreg"; }
	echo "$SOCK:$port:mreg:mreg:$pass" >"$P/pgpass"
	echo "127.0.0.1:$port:mreg:mreg:$pass" >>"$P/pgpass"
	chmod 600 "$P/pgpass"
}

start_server() {
	as_runner "$PGBIN/pg_ctl" -D "$DATA" -l "$P/server.log" -w -t 60 \
		-s start >/dev/null 2>&1 ||
		{ tail -20 "$P/server.log" >&2
		  svc_die "the server did not start (log: $P/server.log)"; }
}

write_env() {
	port=$(sed -n 's/^port = //p' "$DATA/postgresql.conf" | tail -n 1)
	pass=$(cat "$P/password")
	cat >"$ENV.tmp" <<-EOF
	# PostgreSQL for mreg's tests: sh tests/services/pg.sh stop $D
	PGHOST=$SOCK
	PGPORT=$port
	PGDATABASE=mreg
	PGUSER=mreg
	PGPASSWORD=$pass
	MREG_PG_HOSTADDR=127.0.0.1
	MREG_PG_PASSFILE=$P/pgpass
	MREG_PG_PID=$(postmaster_pid)
	export PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD
	export MREG_PG_HOSTADDR MREG_PG_PASSFILE MREG_PG_PID
	EOF
	chmod 600 "$ENV.tmp"
	mv "$ENV.tmp" "$ENV"
}

do_start() {
	if [ -f "$DATA/PG_VERSION" ]; then
		postmaster_pid >/dev/null || start_server
	else
		init_cluster
	fi
	write_env
	echo "$ENV"
}

# Fast shutdown (SIGINT: clients are disconnected), by the postmaster's
# PID; the postmaster takes its children down with it.
do_halt() {
	pid=$(postmaster_pid) || return 0
	svc_stop_pid "$pid" INT 30
}

do_stop() {
	do_halt
	rm -rf "$P" "$ENV" "$ENV.tmp"
	rmdir "$D" 2>/dev/null
	return 0
}

do_status() {
	postmaster_pid >/dev/null
}

svc_main "$@"
