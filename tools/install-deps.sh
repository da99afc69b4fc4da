#!/bin/sh
# Installs, on Debian 12, the packages mreg needs to build, test and demo.
# Does nothing when all of them are present already. prometheus is for its
# promtool (the tests check .mreg/metrics with `promtool check metrics`).
#
#	sh tools/install-deps.sh		the build, the tests, the demo
#	sh tools/install-deps.sh services	and the services some tests
#						start (tests/services/):
#						PostgreSQL, Ceph's radosgw
#
# Tests that need a service skip, saying why, when its packages are
# missing; .ci/run installs both groups, so CI runs them all.
set -e
PKGS="build-essential pkg-config libfuse3-dev fuse3 liblmdb-dev lmdb-utils \
libxxhash-dev libbsd-dev libmd-dev libcurl4-openssl-dev libssl-dev libpq-dev \
rsync attr python3 clang strace prometheus"
SERVICE_PKGS="curl postgresql ceph-mon ceph-osd radosgw ceph-common"
for group in "$@"; do
	case $group in
	services) PKGS="$PKGS $SERVICE_PKGS" ;;
	*) echo "usage: install-deps.sh [services]" >&2; exit 2 ;;
	esac
done
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "mreg: missing packages:$missing (run as root, or apt-get install them)" >&2
	exit 1
fi
echo "mreg: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing >/dev/null
