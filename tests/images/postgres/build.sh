#!/usr/bin/env bash
# Builds a local PostgreSQL 15 image for testcontainers-go, without a registry.
#
#   tests/images/postgres/build.sh [--force] [--debootstrap] [IMAGE]
#
# IMAGE defaults to $TEST_POSTGRES_IMAGE, then userservice-test-postgres:15: the tests
# read the same variable, so one setting names the image both here and there.
# The image is reused when it exists and was built by this very version of the script
# (a label records a digest of the files that define it); --force (or FORCE=1)
# rebuilds it anyway. An image of that name that this script did not build (say, the
# official postgres:15) is never replaced without --force.
#
# Where the binaries come from (see tests/images/README.md):
#   - the host's /usr/lib/postgresql/15 (Debian's postgresql-15), copied with only the
#     libraries ldd lists, a shell, cat/awk/grep (testcontainers' port check runs
#     `cat /proc/net/tcp* | awk | grep` in the container) and the entrypoint;
#   - when that is missing (or with --debootstrap), a minimal Debian bookworm made by
#     debootstrap with postgresql-15, trimmed. debootstrap is installed with apt-get
#     when absent. This path needs root.
# The image runs as the postgres user (uid 999 in the host-built image), so initdb,
# which refuses to run as root, needs no su or gosu; PGDATA's parent is owned by that
# user in the archive.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"

parse_args --debootstrap -- "$@"
source_kind=host
[ -z "${opt_debootstrap:-}" ] || source_kind=debootstrap
image=${images[0]:-${TEST_POSTGRES_IMAGE:-userservice-test-postgres:15}}

pg=/usr/lib/postgresql/15
if [ "$source_kind" = host ] && [ ! -x "$pg/bin/postgres" ]; then
	echo "$pg/bin/postgres is missing: building from debootstrap instead" >&2
	source_kind=debootstrap
fi

hash=$(build_hash "$here/build.sh" "$here/docker-entrypoint.sh" "$here/../lib.sh")-$source_kind
exit_if_up_to_date "$image" "$hash" "$force"

work=$(mktemp -d "${TMPDIR:-/tmp}/pg-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
started=$(date +%s)

if [ "$source_kind" = host ]; then
	uid=999
	gid=999
	rootfs_init "$root"
	# llvmjit.so and the bitcode are left out: they need libLLVM (~100 MiB) and JIT is
	# useless for tests; without them PostgreSQL just runs with JIT unavailable.
	mkdir -p "$root$pg"
	cp -a "$pg/bin" "$root$pg/"
	mkdir -p "$root$pg/lib"
	find "$pg/lib" -mindepth 1 -maxdepth 1 ! -name bitcode ! -name 'llvmjit*' \
		-exec cp -a {} "$root$pg/lib/" \;
	copy_path "$root" /usr/share/postgresql/15
	# Debian builds PostgreSQL with the system's time zone database.
	copy_path "$root" /usr/share/zoneinfo
	rm -rf "$root/usr/share/zoneinfo/right" "$root/usr/share/zoneinfo/posix"
	[ -d /usr/lib/locale/C.utf8 ] && copy_path "$root" /usr/lib/locale/C.utf8
	mapfile -t elves < <(find "$root$pg/bin" "$root$pg/lib" -type f | sed "s|^$root||")
	for f in $(elf_deps "${elves[@]}"); do
		copy_path "$root" "$f"
	done
	copy_tools "$root" dash cat awk grep locale
	ln -sfn dash "$root/usr/bin/sh"
	cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
postgres:x:$uid:$gid:PostgreSQL administrator:/var/lib/postgresql:/bin/sh
EOF
	cat >"$root/etc/group" <<EOF
root:x:0:
postgres:x:$gid:
EOF
else
	[ "$(id -u)" = 0 ] || die "building from debootstrap needs root"
	if ! command -v debootstrap >/dev/null; then
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
	fi
	mirror=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	debootstrap --variant=minbase --include=postgresql-15 bookworm "$root" "${mirror:-http://deb.debian.org/debian}"
	# The package made a cluster of its own, and debootstrap leaves caches and docs.
	# JIT (LLVM and its z3) is dropped as on the host path, and so are perl (only
	# postgresql-common's wrappers use it) and the locale sources.
	rm -rf "$root/var/lib/postgresql/15" "$root/etc/postgresql" "$root/var/cache/apt" \
		"$root/var/lib/apt/lists" "$root/usr/share/doc" "$root/usr/share/man" \
		"$root/usr/share/info" "$root/usr/share/locale" "$root/usr/share/i18n" \
		"$root/usr/share/perl" "$root"/usr/lib/*-linux-gnu/perl \
		"$root"/usr/lib/*-linux-gnu/libLLVM-* "$root"/usr/lib/*-linux-gnu/libz3.so* \
		"$root$pg/lib/bitcode" "$root$pg"/lib/llvmjit*
	uid=$(awk -F: '$1 == "postgres" { print $3 }' "$root/etc/passwd")
	gid=$(awk -F: '$1 == "postgres" { print $4 }' "$root/etc/passwd")
	if [ -z "$uid" ] || [ -z "$gid" ]; then
		die "no postgres user in the debootstrapped system"
	fi
fi

# As in the official image: initdb writes a configuration that listens on every
# address; the entrypoint's temporary server overrides it to the socket only.
sed -ri "s/^#?(listen_addresses)[[:space:]]*=[[:space:]]*[^[:space:]]+/\1 = '*'/" \
	"$root/usr/share/postgresql/15/postgresql.conf.sample"
grep -q "^listen_addresses = '\*'" "$root/usr/share/postgresql/15/postgresql.conf.sample" ||
	die "could not set listen_addresses in postgresql.conf.sample"

mkdir -p "$root/var/lib/postgresql/data" "$root/run/postgresql" "$root/docker-entrypoint-initdb.d" \
	"$root/usr/local/bin"
chmod 0700 "$root/var/lib/postgresql/data"
chmod 0775 "$root/run/postgresql"
install -m 0755 "$here/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"

version=$("$root$pg/bin/postgres" --version 2>/dev/null || true)
import_rootfs "$root" "$image" "$uid:$gid" "var/lib/postgresql run/postgresql" \
	'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
	'CMD ["postgres"]' \
	"ENV PATH=$pg/bin:/usr/local/bin:/usr/bin:/bin" \
	'ENV PGDATA=/var/lib/postgresql/data' \
	'ENV LANG=C.UTF-8' \
	"USER $uid:$gid" \
	'WORKDIR /var/lib/postgresql' \
	'EXPOSE 5432/tcp' \
	"LABEL $build_label=$hash" \
	"LABEL org.opencontainers.image.description=\"${version:-PostgreSQL 15} for userservice tests, built from $source_kind\""

echo "built $image from $source_kind in $(($(date +%s) - started)) s ($(du -sh "$root" | cut -f1) unpacked)"
