#!/bin/sh
# s3wrap.sh — mreg and mregfs with their store on S3, for the suite's run
# with every store on S3 (tests/run.sh with MREG_TEST_S3=1, see there).
#
#	sh tests/s3wrap.sh BINARY ARGS...
#
# runs BINARY (build/mreg or build/mregfs) with ARGS, its config made to
# put the store's chunks in the bucket of the radosgw that run.sh started
# (MREG_TEST_S3_DIR/rgw/rgw.env, its endpoint in MREG_TEST_S3_DIR/s3.env
# for users other than root): the config file of -c/--config (or none)
# with "backend = s3" added to its [store] section and an [s3] section
# (endpoint, bucket, region, gc_grace of 60 s, the least) appended. The
# key prefix is made from the store's path (--store, else $MREG_STORE),
# so that every command on one store finds its objects and two stores
# never share them (the store: --store, mregfs's -o store= or STORE
# MOUNTPOINT, $MREG_STORE, or the config's [store] path; the config: -c,
# --config, mregfs's -o config=); the cache is the store's own cache/. A config that
# names a backend itself, or a command without a store (mreg --help), is
# left alone, and so is a config file that cannot be read (the error is
# the test's). The merged file goes to MREG_TEST_S3_DIR/conf/ (sticky and
# writable by all, as tests run mreg as other users; readable by all: it
# holds no secret, the keys come from the environment, else rgw.env). The process is BINARY itself (exec), as the tests expect
# of the daemon's pid. With MREG_TEST_PG (MREG_PG_CONNINFO in s3.env) the
# store's index goes to PostgreSQL too, in a schema named after the store.
set -u
real=$1
shift
d=${MREG_TEST_S3_DIR:?MREG_TEST_S3_DIR names the run\'s radosgw}
# the endpoint, for every user; the keys, where this user may read them
# (else the environment's: run.sh exports them)
. "$d/s3.env"
if [ -z "${AWS_ACCESS_KEY_ID:-}" ] && [ -r "$d/rgw/rgw.env" ]; then
	. "$d/rgw/rgw.env"
fi

conf= store=${MREG_STORE:-} next= npos=0 first=
fs=false
case ${real##*/} in
mregfs) fs=true ;;
esac
# mregfs -o OPTS: notes store=, takes config= out; the rest in $rest
split_opts() {
	rest=
	set -f
	_ifs=$IFS
	IFS=,
	for _o in $1; do
		case $_o in
		config=*) conf=${_o#config=} ;;
		store=*) store=${_o#store=}; rest=$rest${rest:+,}$_o ;;
		*) rest=$rest${rest:+,}$_o ;;
		esac
	done
	IFS=$_ifs
	set +f
}
for a; do
	shift
	case $next in
	conf) conf=$a next=; continue ;;
	store) store=$a next= ;;
	opts)
		next=
		split_opts "$a"
		[ -z "$rest" ] || set -- "$@" -o "$rest"
		continue ;;
	esac
	case $a in
	-c | --config) next=conf; continue ;;
	--config=*) conf=${a#--config=}; continue ;;
	--store) next=store ;;
	--store=*) store=${a#--store=} ;;
	-o) if $fs; then next=opts; continue; fi ;;
	-*) ;;
	*) npos=$((npos + 1)); [ "$npos" -eq 1 ] && first=$a ;;
	esac
	set -- "$@" "$a"
done
# mregfs STORE MOUNTPOINT (the fstab form)
if $fs && [ -z "$store" ] && [ "$npos" -eq 2 ]; then
	store=$first
fi

# a store named by the config alone ([store] path)
if [ -z "$store" ] && [ -n "$conf" ] && [ -f "$conf" ] && [ -r "$conf" ]; then
	store=$(awk '/^[[:space:]]*\[/ { sec = $0 }
		     sec ~ /^[[:space:]]*\[store\]/ &&
		     /^[[:space:]]*path[[:space:]]*=/ {
			sub(/^[^=]*=[[:space:]]*/, ""); sub(/[[:space:]]*$/, "")
			print }' "$conf")
fi
if [ -z "$store" ] ||
   { [ -n "$conf" ] && ! { [ -f "$conf" ] && [ -r "$conf" ]; }; } ||
   { [ -n "$conf" ] && grep -q '^[[:space:]]*backend[[:space:]]*=' "$conf"; }
then
	exec "$real" ${conf:+-c "$conf"} "$@"
fi
case $store in
/*) ;;
*) store=$PWD/$store ;;
esac
key=$(printf '%s' "$store" | md5sum | cut -c1-16)
# named after the file it stands for, which messages and the audit name
merged=$d/conf/$$-$key-$(basename "${conf:-mreg.conf}")
{
	if [ -n "$conf" ]; then
		# "backend = s3" ends the [store] section: the lines before
		# it keep their numbers (in messages)
		awk 'function flush() { if (in_store) print "backend = s3"
				       in_store = 0 }
		     /^[[:space:]]*\[/ { flush()
			if ($0 ~ /^[[:space:]]*\[store\][[:space:]]*$/) {
				in_store = 1; seen = 1 } }
		     { print }
		     END { flush()
			   if (!seen) printf "[store]\nbackend = s3\n" }' \
			"$conf"
	else
		printf '[store]\nbackend = s3\n'
	fi
	printf '[s3]\nendpoint = %s\nbucket = %s\nregion = %s\n' \
		"$MREG_S3_ENDPOINT" "$MREG_S3_BUCKET" "$MREG_S3_REGION"
	printf 'path_style = yes\nkey_prefix = s3run/%s/\ngc_grace = 60\n' \
		"$key"
	if [ -n "${MREG_PG_CONNINFO:-}" ]; then
		printf '[index]\nbackend = postgres\n[postgres]\n'
		printf 'conninfo = %s\nschema = s_%s\n' \
			"$MREG_PG_CONNINFO" "$key"
	fi
} >"$merged" || exit 1
chmod 644 "$merged"
exec "$real" -c "$merged" "$@"
