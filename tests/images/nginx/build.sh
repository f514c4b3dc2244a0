#!/usr/bin/env bash
# Builds a local nginx image for docker-compose.yml's load balancer (the
# "replicas" profile), without a registry.
#
#   tests/images/nginx/build.sh [--force] [IMAGE]
#
# IMAGE defaults to $TEST_LB_IMAGE, then userservice-test-nginx:1; tests/deploy
# passes the same variable to docker-compose as LB_IMAGE. As with the other scripts
# of tests/images, an image built by this version of the script is reused unless
# --force (or FORCE=1) is given, and an image of that name that this script did not
# build is never replaced without --force.
#
# The image holds Debian's nginx (nginx-light, installed on the host with apt-get
# when missing, which needs root) and the libraries ldd lists for it, and runs
# `nginx -g 'daemon off;'` as the official image does. It is enough for
# deploy/nginx.conf, which is written to work here and on the official image.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"

parse_args -- "$@"
image=${images[0]:-${TEST_LB_IMAGE:-userservice-test-nginx:1}}

hash=$(build_hash "$here/build.sh" "$here/../lib.sh")
exit_if_up_to_date "$image" "$hash" "$force"

if [ ! -x /usr/sbin/nginx ]; then
	install_without_service nginx-light
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/nginx-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
started=$(date +%s)

rootfs_init "$root"
copy_with_deps "$root" /usr/sbin/nginx
# nginx creates its compiled-in temporary directories at start, and opens its
# compiled-in log path before reading the configuration.
mkdir -p "$root/var/lib/nginx/body" "$root/var/lib/nginx/proxy" "$root/var/lib/nginx/fastcgi" \
	"$root/var/lib/nginx/scgi" "$root/var/lib/nginx/uwsgi" "$root/var/log/nginx" \
	"$root/etc/nginx" "$root/usr/share/nginx"
[ -f /etc/nginx/mime.types ] && cp /etc/nginx/mime.types "$root/etc/nginx/"
# The master runs as root; workers as nginx's compiled-in default, nobody.
cat >"$root/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<GROUP
root:x:0:
nogroup:x:65534:
nobody:x:65534:
GROUP

version=$(/usr/sbin/nginx -v 2>&1 || true)
import_rootfs "$root" "$image" "0:0" "" \
	'ENTRYPOINT ["/usr/sbin/nginx"]' \
	'CMD ["-g", "daemon off;"]' \
	'ENV PATH=/usr/sbin:/usr/bin:/bin' \
	'EXPOSE 8080/tcp' \
	"LABEL $build_label=$hash" \
	"LABEL org.opencontainers.image.description=\"${version:-nginx} for userservice tests\""

echo "built $image in $(($(date +%s) - started)) s ($(du -sh "$root" | cut -f1) unpacked)"
