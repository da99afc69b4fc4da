#!/bin/sh
# The README's first command: installs what is missing, builds, mounts a
# registry on the embedded default store at /tmp/mreg-demo, registers and
# promotes a sample model with plain cp and ln, and shows the result.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh tools/install-deps.sh
# the two programs only, not the tests
make -s programs
mnt=${MREG_DEMO_MNT:-/tmp/mreg-demo}
mkdir -p "$mnt"
if ! mountpoint -q "$mnt"; then
	./build/mregfs "$mnt"
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		mountpoint -q "$mnt" && break
		sleep 0.2
	done
fi
mountpoint -q "$mnt" || { echo "demo: mregfs did not mount '$mnt'" >&2; exit 1; }
echo "== mounted the registry (store: $(./build/mreg init 2>/dev/null || echo default)) at $mnt"

m="$mnt/models/churn"
[ -d "$m" ] || mkdir "$m"
sample=$(mktemp)
head -c 3000000 /dev/urandom >"$sample"
chmod 644 "$sample"
echo "== cp model.onnx $m/      (registers the next version)"
cp "$sample" "$m/model.onnx"
ver=$(ls "$m" | grep -E '^[0-9]+$' | sort -n | tail -1)
echo "== ln -sfn ../$ver $m/stages/Production      (promotes it)"
ln -sfn "../$ver" "$m/stages/Production"
setfattr -n user.mreg.metric.auc -v 0.93 "$m/$ver"
echo "== ls -l $m"
ls -l "$m"
echo "== ls -l $m/stages"
ls -l "$m/stages"
echo "== readlink $m/stages/Production"
readlink "$m/stages/Production"
echo "== ls -l $m/stages/Production/"
ls -l "$m/stages/Production/"
cmp "$sample" "$m/stages/Production/model.onnx" &&
	echo "== the serving path returns the bytes that were copied in"
rm -f "$sample"
echo "== getfattr -d -m '^user.mreg' $m/$ver"
getfattr -d -m '^user.mreg' "$m/$ver"
echo "== mreg history churn Production"
./build/mreg history churn Production
echo
echo "The registry stays mounted at $mnt. Unmount it with:"
echo "    fusermount3 -u $mnt"
