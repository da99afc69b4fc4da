#!/bin/sh
# layers.sh — which layer of core/ may include which, and which names a
# layer's symbols carry (issue 16; RESHAPE-PLAN §1.3). An #include line
# says which layer it uses: a header of another layer is named by its
# path from core/ ("store/store.h"), a private header of one's own
# directory by its bare name ("internal.h").
#
# Rules, one check each:
#  1. <lmdb.h> only in core/index/lmdb/, <libpq-fe.h> only in
#     core/index/pg/, <curl/curl.h> only in core/store/s3/ and
#     core/webhook/, <fuse*.h> only in fs/, <jansson.h> only in tools/.
#  2. The leaves (core/*.[ch]) include only leaves; chunk/ only leaves and
#     chunk/; webhook/ (hook URLs: their rule, signature and delivery)
#     only leaves and webhook/.
#  3. store/ includes leaves, chunk/ and store/*.h; store/pack/ and
#     store/s3/ headers only from their own directory.
#  4. index/ includes leaves, chunk/ and index/*.h; index/lmdb/ and
#     index/pg/ headers only from their own directory.
#  5. config/ includes leaves, chunk/chunker.h, registry/names.h and
#     webhook/webhook.h (a config names stages and hook URLs; the
#     stage-name rule and the URL rule exist once).
#  6. serve/ (the serving cache, below the registry) includes leaves,
#     chunk/, config/config.h and serve/.
#  7. registry/, maint/ and query/ include anything of core/ but a
#     backend's insides: store/backend.h, store/pack/, store/s3/,
#     index/backend.h, index/lmdb/, index/pg/ (a backend's
#     configuration header, store/s3/s3store.h, is public: the registry
#     fills it from the config).
#  8. fs/ and tools/ include from core/ only the public headers listed
#     below, never each other's.
#  9. Every extern symbol of the core's objects starts with its layer's
#     prefix (nm; needs a build: MREG_BUILD).
#
# EXCEPTIONS lists what breaks a rule today, by file, each with the step
# of the reshape that removes it; the check fails on any other breakage,
# and on an exception that no longer happens (so the list only shrinks).
#
# Usage: sh tests/layers.sh    (prints TAP lines; exit 1 on a failure)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
B=${MREG_BUILD:-$top/build}
cd "$top" || exit 2

# rule, file, included file (or object, symbol), (the step that ends it)
EXCEPTIONS='
'

PUBLIC='registry/registry.h config/config.h log.h util.h json.h
chunk/chunkid.h query/search.h registry/serve.h serve/serve.h'

# "file target" for each #include: a quoted bare name is resolved in the
# including file's directory, any other quoted name from core/; a system
# header is "<name>".
includes() {
	find core fs tools -name '*.[ch]' | sort | while read -r f; do
		sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*\([<"][^>"]*[>"]\).*/\1/p' "$f" |
		while read -r inc; do
			case $inc in
			\<*) echo "$f $inc" ;;
			*)
				n=${inc#\"}; n=${n%\"}
				d=$(dirname "$f")
				case $n in
				*/*) echo "$f core/$n" ;;
				*) if [ -f "$d/$n" ]; then echo "$f $d/$n"
				   else echo "$f core/$n"; fi ;;
				esac ;;
			esac
		done
	done
}

# prints "rule file target" for every include that breaks a rule
judge() {
	awk -v public="$PUBLIC" '
	BEGIN { n = split(public, p, /[ \n]+/); for (i = 1; i <= n; i++) pub["core/" p[i]] = 1 }
	function layer(path,   a, k) {
		if (path !~ /^core\//) { k = split(path, a, "/"); return a[1] }
		k = split(path, a, "/")
		return k == 2 ? "leaf" : a[2]
	}
	function sub2(path,   a, k) { k = split(path, a, "/"); return k > 3 ? a[2] "/" a[3] : "" }
	function bad(rule) { print rule, f, t }
	{
		f = $1; t = $2
		if (t ~ /^</) {
			if (t == "<lmdb.h>" && f !~ /^core\/index\/lmdb\//) bad(1)
			if (t == "<curl/curl.h>" && f !~ /^core\/store\/s3\// && f !~ /^core\/webhook\//) bad(1)
			if (t == "<libpq-fe.h>" && f !~ /^core\/index\/pg\//) bad(1)
			if (t ~ /^<fuse/ && f !~ /^fs\//) bad(1)
			if (t == "<jansson.h>" && f !~ /^tools\//) bad(1)
			next
		}
		sl = layer(f); tl = layer(t)
		if (sl == "fs" || sl == "tools") {
			if (tl == "fs" || tl == "tools") { if (tl != sl) bad(8); next }
			if (!(t in pub)) bad(8)
			next
		}
		# a private header of a subdirectory only from that subdirectory
		ts = sub2(t)
		if (ts != "" && ts != sub2(f) && (ts == "store/pack" || ts == "store/s3" || ts == "index/lmdb" || ts == "index/pg") &&
		    t != "core/store/s3/s3store.h") {
			bad(sl == "store" ? 3 : sl == "index" ? 4 : sl == "registry" || sl == "maint" || sl == "query" ? 7 : sl == "leaf" || sl == "chunk" ? 2 : sl == "config" ? 5 : 6)
			next
		}
		if (sl == "leaf") { if (tl != "leaf") bad(2); next }
		if (sl == "chunk") { if (tl != "leaf" && tl != "chunk") bad(2); next }
		if (sl == "webhook") { if (tl != "leaf" && tl != "webhook") bad(2); next }
		if (sl == "store") { if (tl != "leaf" && tl != "chunk" && tl != "store") bad(3); next }
		if (sl == "index") { if (tl != "leaf" && tl != "chunk" && tl != "index") bad(4); next }
		if (sl == "config") {
			if (tl != "leaf" && tl != "config" && t != "core/chunk/chunker.h" && t != "core/registry/names.h" && t != "core/webhook/webhook.h") bad(5)
			next
		}
		if (sl == "serve") {
			if (tl != "leaf" && tl != "chunk" && tl != "serve" && t != "core/config/config.h") bad(6)
			next
		}
		if (sl == "registry" || sl == "maint" || sl == "query") {
			if (t == "core/store/backend.h" || t == "core/index/backend.h") bad(7)
			next
		}
		bad(2)
	}'
}

# prints "9 object symbol" for each extern symbol without its prefix
symbols() {
	find "$B/core" -name '*.o' | sort | while read -r o; do
		rel=${o#"$B"/}
		# an object whose source is gone (a file moved since that
		# build) is not the tree's
		[ -f "$top/${rel%.o}.c" ] || continue
		case $rel in
		core/*/*) l=${rel#core/}; l=${l%%/*} ;;
		*) l=leaf ;;
		esac
		case $l in
		leaf) pre='log_ strbuf_ io_ util_ json_ keymap_' ;;
		chunk) pre='chunk chunkid_ chunker_ digest_' ;;
		store) pre='store_ pack_ s3_' ;;
		index) pre='idx_ rec_' ;;
		config) pre='config_' ;;
		query) pre='search_ reg_' ;;
		serve) pre='serve_' ;;
		webhook) pre='webhook_' ;;
		registry) pre='reg_ hooks_ fdcap_' ;;
		maint) pre='reg_' ;;
		*) pre='' ;;
		esac
		# __odr_asan.X: what AddressSanitizer adds beside a global X
		nm -g --defined-only "$o" | awk -v o="$rel" -v pre="$pre" '
			NF == 3 && $3 !~ /^__odr_asan\./ {
				n = split(pre, p, " "); ok = 0
				for (i = 1; i <= n; i++) if (index($3, p[i]) == 1) ok = 1
				if (!ok) print 9, o, $3 }'
	done
}

found=$(mktemp) || exit 2
trap 'rm -f "$found"' EXIT
includes | judge >"$found"
if [ -d "$B/core" ]; then
	symbols >>"$found"
	have_objects=1
else
	have_objects=0
fi

names='system headers in their one layer|leaves, chunk/ and webhook/ include only leaves|store/ includes leaves, chunk/, store/|index/ includes leaves, chunk/, index/|config/ includes leaves, chunker.h, names.h, webhook.h|serve/ includes leaves, chunk/, config.h, serve/|registry/, maint/, query/ see no backend insides|fs/ and tools/ include only public core headers|extern symbols carry their layer prefix'
fail=0
for rule in 1 2 3 4 5 6 7 8 9; do
	what=$(echo "$names" | cut -d'|' -f"$rule")
	if [ "$rule" = 9 ] && [ "$have_objects" = 0 ]; then
		echo "ok $rule - $what # SKIP no objects in $B/core (build first)"
		continue
	fi
	bad=$(awk -v r="$rule" '$1 == r' "$found" | sort -u)
	exc=$(echo "$EXCEPTIONS" | awk -v r="$rule" '$1 == r { print $1, $2, $3 }' |
		sort -u)
	new=$(printf '%s\n' "$bad" | grep -vxF -e "$exc" -e '' || true)
	[ -n "$exc" ] || new=$bad
	gone=$(printf '%s\n' "$exc" | grep -vxF -e "$bad" -e '' || true)
	[ -n "$bad" ] || gone=$exc
	if [ -z "$new" ] && [ -z "$gone" ]; then
		echo "ok $rule - $what"
	else
		echo "not ok $rule - $what"
		[ -z "$new" ] || printf '%s\n' "$new" | sed 's/^[0-9]* /# breaks it: /'
		[ -z "$gone" ] || printf '%s\n' "$gone" |
			sed 's/^[0-9]* /# listed in EXCEPTIONS, no longer true (remove it): /'
		fail=1
	fi
done
exit $fail
