#!/usr/bin/env bash
# Builds a local Redis 7 image for testcontainers-go, without a registry.
#
#   tests/images/redis/build.sh [--force] [IMAGE]
#
# IMAGE defaults to $TEST_REDIS_IMAGE, then userservice-test-redis:7: the tests read
# the same variable. As with tests/images/postgres/build.sh, an image built by this
# version of the script is reused unless --force (or FORCE=1) is given, and an image
# of that name that this script did not build is never replaced without --force.
#
# The image holds Debian's redis-server (installed on the host with apt-get when
# missing, which needs root), the libraries ldd lists for it, redis-cli, a shell and
# cat/awk/grep (testcontainers' port check runs them in the container), and an
# entrypoint that passes its arguments to redis-server. It runs as the redis user
# (uid 999) in /data.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"

parse_args -- "$@"
image=${images[0]:-${TEST_REDIS_IMAGE:-userservice-test-redis:7}}

hash=$(build_hash "$here/build.sh" "$here/docker-entrypoint.sh" "$here/../lib.sh")
exit_if_up_to_date "$image" "$hash" "$force"

if ! command -v redis-server >/dev/null; then
	install_without_service redis-server
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/redis-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
started=$(date +%s)
uid=999
gid=999

rootfs_init "$root"
copy_tools "$root" redis-server redis-cli dash cat awk grep
ln -sfn dash "$root/usr/bin/sh"
cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
redis:x:$uid:$gid:Redis:/data:/bin/sh
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
redis:x:$gid:
EOF
mkdir -p "$root/data" "$root/usr/local/bin"
install -m 0755 "$here/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"

version=$(redis-server --version 2>/dev/null || true)
import_rootfs "$root" "$image" "$uid:$gid" "data" \
	'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
	'CMD ["redis-server"]' \
	'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
	"USER $uid:$gid" \
	'WORKDIR /data' \
	'EXPOSE 6379/tcp' \
	"LABEL $build_label=$hash" \
	"LABEL org.opencontainers.image.description=\"${version:-Redis} for userservice tests\""

echo "built $image in $(($(date +%s) - started)) s ($(du -sh "$root" | cut -f1) unpacked)"
