#!/usr/bin/env bash
# Builds local stand-ins for the two base images of the project's Dockerfile, so the
# committed Dockerfile builds on a machine whose Docker engine has no registry:
#
#   tests/images/bases/build.sh [--force] [GO_IMAGE [RUNTIME_IMAGE]]
#   DOCKER_BUILDKIT=0 docker build \
#     --build-arg GO_IMAGE=userservice-base-go:1.26 \
#     --build-arg RUNTIME_IMAGE=userservice-base-static:nonroot -t userservice:dev .
#
# GO_IMAGE defaults to $TEST_GO_IMAGE, then userservice-base-go:1.26; RUNTIME_IMAGE to
# $TEST_RUNTIME_IMAGE, then userservice-base-static:nonroot (tests/deploy reads the
# same variables). As with the other scripts of tests/images, an image built by this
# version of the script (and, for the Go image, the same Go release) is reused unless
# --force (or FORCE=1) is given, and an image of that name that this script did not
# build is never replaced without --force.
#
# The images stand in for the public defaults only as far as the Dockerfile needs:
#   - GO_IMAGE, for golang:1.26-bookworm: the host's /usr/local/go, a POSIX shell and
#     the few commands the Dockerfile's RUN lines use (the legacy builder runs them
#     with /bin/sh -c), the host's CA bundle, and the host's GOPROXY/GOSUMDB. Its
#     `go mod download` fetches modules over the network like the public image does:
#     containers on the default bridge reach the Go module proxy here; the host's CA
#     bundle is copied because it holds the certificate of this network's egress
#     proxy.
#   - RUNTIME_IMAGE, for gcr.io/distroless/static-debian12:nonroot: no shell, no
#     package manager; /etc/passwd and /etc/group with root, nobody and nonroot (uid
#     and gid 65532, the user the Dockerfile runs as), the CA bundle, the time zone
#     database, /tmp and /home/nonroot, and the same USER, WORKDIR and SSL_CERT_FILE.
# Both are made with `docker import` (no builder, no registry), like the test
# database images beside this folder.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"

parse_args -- "$@"
go_image=${images[0]:-${TEST_GO_IMAGE:-userservice-base-go:1.26}}
runtime_image=${images[1]:-${TEST_RUNTIME_IMAGE:-userservice-base-static:nonroot}}

goroot=/usr/local/go
[ -x "$goroot/bin/go" ] || die "$goroot/bin/go is missing: install Go 1.26 there (as the official tarball does)"
command -v docker >/dev/null || die "docker is not installed"

ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || die "$ca_bundle is missing: apt-get install ca-certificates"

work=$(mktemp -d "${TMPDIR:-/tmp}/base-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# build_go_image IMAGE makes the build stage's base. It runs in a subshell so that
# exit_if_up_to_date ends only this image's build.
build_go_image() (
	local image=$1 root=$work/go version proxy sumdb hash started
	version=$("$goroot/bin/go" env GOVERSION)
	proxy=$("$goroot/bin/go" env GOPROXY)
	sumdb=$("$goroot/bin/go" env GOSUMDB)
	hash=$(build_hash "$here/build.sh" "$here/../lib.sh" "$ca_bundle")-$version
	exit_if_up_to_date "$image" "$hash" "$force"
	started=$(date +%s)

	rootfs_init "$root"
	# The toolchain without its own test suite and documentation.
	mkdir -p "$root/usr/local"
	cp -a "$goroot" "$root/usr/local/go"
	rm -rf "$root/usr/local/go/test" "$root/usr/local/go/doc"
	copy_tools "$root" dash mkdir cat ls cp mv rm
	ln -sfn dash "$root/usr/bin/sh"
	copy_path "$root" "$ca_bundle"
	mkdir -p "$root/root" "$root/go/bin" "$root/go/pkg"
	cat >"$root/etc/passwd" <<-EOF
		root:x:0:0:root:/root:/bin/sh
	EOF
	cat >"$root/etc/group" <<-EOF
		root:x:0:
	EOF
	echo 'hosts: files dns' >"$root/etc/nsswitch.conf"

	# The same environment as the official golang image, plus the host's module
	# proxy settings (a corporate mirror set on the host is wanted in the build too).
	import_rootfs "$root" "$image" "0:0" "" \
		'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		'ENV GOPATH=/go' \
		'ENV GOTOOLCHAIN=local' \
		"ENV GOPROXY=$proxy" \
		"ENV GOSUMDB=$sumdb" \
		"ENV SSL_CERT_FILE=$ca_bundle" \
		'WORKDIR /go' \
		'CMD ["/bin/sh"]' \
		"LABEL $build_label=$hash" \
		"LABEL org.opencontainers.image.description=\"$version from the host, a stand-in for golang:1.26-bookworm\""
	echo "built $image in $(($(date +%s) - started)) s ($(du -sh "$root" | cut -f1) unpacked)"
)

# build_runtime_image IMAGE makes the runtime stage's base.
build_runtime_image() (
	local image=$1 root=$work/static hash started
	hash=$(build_hash "$here/build.sh" "$here/../lib.sh" "$ca_bundle")
	exit_if_up_to_date "$image" "$hash" "$force"
	started=$(date +%s)

	rootfs_init "$root"
	copy_path "$root" "$ca_bundle"
	copy_path "$root" /usr/share/zoneinfo
	rm -rf "$root/usr/share/zoneinfo/right" "$root/usr/share/zoneinfo/posix"
	mkdir -p "$root/home/nonroot" "$root/root"
	chmod 0700 "$root/home/nonroot" "$root/root"
	# distroless's accounts, with no login shell (there is no shell at all).
	cat >"$root/etc/passwd" <<-EOF
		root:x:0:0:root:/root:/sbin/nologin
		nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
		nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
	EOF
	cat >"$root/etc/group" <<-EOF
		root:x:0:
		nobody:x:65534:
		nonroot:x:65532:
	EOF
	echo 'hosts: files dns' >"$root/etc/nsswitch.conf"

	import_rootfs "$root" "$image" "65532:65532" "home/nonroot" \
		'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		"ENV SSL_CERT_FILE=$ca_bundle" \
		'USER 65532:65532' \
		'WORKDIR /home/nonroot' \
		"LABEL $build_label=$hash" \
		'LABEL org.opencontainers.image.description="a shell-less static base, a stand-in for gcr.io/distroless/static-debian12:nonroot"'
	echo "built $image in $(($(date +%s) - started)) s ($(du -sh "$root" | cut -f1) unpacked)"
)

build_go_image "$go_image"
build_runtime_image "$runtime_image"
