#!/bin/sh
# Installs, on Debian 12, the packages mreg needs to build, test and demo.
# Does nothing when all of them are present already.
set -e
PKGS="build-essential pkg-config libfuse3-dev fuse3 liblmdb-dev lmdb-utils \
libxxhash-dev libbsd-dev libmd-dev rsync attr python3 clang strace"
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
