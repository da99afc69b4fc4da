# lib.sh — what tests/services/pg.sh and rgw.sh share: a free loopback
# port, waiting for a condition with a deadline, and stopping a daemon by
# the PID it wrote (never by name: other instances, other helpers' tests
# and the machine's own services may run the same program).
#
# Sourced, not run: tests/run.sh runs no file of this directory.

svc_die() {
	echo "$svc_name: $*" >&2
	exit 1
}

# svc_free_port: prints a TCP port that is free on 127.0.0.1 right now
# (the kernel picks it; a daemon that loses the race fails to bind and
# says so in its log).
svc_free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# svc_wait SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds
# (0) or SECONDS have passed (1).
svc_wait() {
	_end=$(($(date +%s) + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$_end" ] && return 1
		sleep 0.1
	done
	return 0
}

# svc_alive PID: true when PID names a live process (not a zombie).
svc_alive() {
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	_st=$(sed 's/^.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$_st" != Z ]
}

svc_gone() {
	! svc_alive "$1"
}

# svc_pidfile_pid FILE MARK: prints the PID on the first line of FILE
# when that process is alive and its command line holds MARK (a path of
# this instance: a PID reused by another process is not ours to kill);
# fails otherwise.
svc_pidfile_pid() {
	[ -r "$1" ] || return 1
	_p=$(head -n 1 "$1" | tr -dc 0-9)
	svc_alive "$_p" || return 1
	tr '\0' ' ' <"/proc/$_p/cmdline" 2>/dev/null | grep -qF -- "$2" ||
		return 1
	echo "$_p"
}

# svc_stop_pid PID SIGNAL SECONDS: sends SIGNAL to PID, waits up to
# SECONDS for it to exit, then sends SIGKILL and waits again.
svc_stop_pid() {
	svc_alive "$1" || return 0
	kill "-$2" "$1" 2>/dev/null
	svc_wait "$3" svc_gone "$1" && return 0
	echo "$svc_name: pid $1 ignored SIG$2 for $3 s: killing it" >&2
	kill -KILL "$1" 2>/dev/null
	svc_wait 10 svc_gone "$1"
}

# svc_main COMMAND [DIR]: runs the command of a service script on its
# functions: check (why_not prints why it cannot run, or nothing), start,
# halt, stop, status, and kill where the script has a do_kill;
# setup_paths DIR sets the script's paths first.
svc_main() {
	case ${1:-} in
	check)
		why=$(why_not)
		[ -z "$why" ] || { echo "$why"; exit 1; }
		exit 0 ;;
	start | halt | stop | status | kill)
		[ "$1" != kill ] || command -v do_kill >/dev/null || usage
		setup_paths "${2:-}"
		"do_$1" ;;
	*) usage ;;
	esac
}

# svc_dir DIR: prints DIR as an absolute path (DIR may not exist yet).
# Its characters are limited so that it goes into config files and env
# files unquoted.
svc_dir() {
	case $1 in
	*[!A-Za-z0-9/._+-]*)
		svc_die "directory '$1': use letters, digits and / . _ + - only"
		;;
	/*) echo "$1" ;;
	*) echo "$(pwd)/$1" ;;
	esac
}
