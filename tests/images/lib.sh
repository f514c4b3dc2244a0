# shellcheck shell=bash
# Shared by tests/images/*/build.sh (sourced, not run).
#
# Why this exists: the machines this project tests on have a Docker engine but no
# registry, so `docker pull postgres:15` fails and BuildKit (which may consult the
# registry even for FROM scratch-like builds) is not installed. Instead we assemble a
# minimal root filesystem from binaries already on the host and turn it into an image
# with `docker import`, which needs neither a builder nor a registry.

# die prints its arguments on stderr and exits non-zero.
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# parse_args [OPTION...] -- [ARG...] reads a build script's command line: --force
# (or FORCE=1 in the environment) sets force; -h/--help prints the script's header
# comment; each OPTION listed before -- (such as --debootstrap) may be given and sets
# opt_<name> (opt_debootstrap=1); any other argument is an image name, in images.
parse_args() {
	local -a allowed=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		allowed+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	force=${FORCE:-}
	images=()
	while [ $# -gt 0 ]; do
		case $1 in
		--force) force=1 ;;
		-h | --help)
			sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
			exit 0
			;;
		-*)
			printf '%s\n' "${allowed[@]}" | grep -qxF -- "$1" || die "unknown option $1"
			declare -g "opt_${1#--}=1"
			;;
		*) images+=("$1") ;;
		esac
		shift
	done
}

# image_label IMAGE KEY prints the value of label KEY on IMAGE, or nothing when the
# image (or the label) does not exist.
image_label() {
	docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# build_hash FILE... prints a digest of the files that define an image, so an image
# built by an older version of a script is rebuilt instead of silently reused.
build_hash() {
	cat "$@" | sha256sum | cut -c1-16
}

# build_label is the image label holding the digest build_hash printed.
build_label=userservice.test-image.build

# exit_if_up_to_date IMAGE HASH FORCE ends the script when IMAGE exists and was built
# from HASH, unless FORCE is non-empty. It refuses to replace an image of that name
# that no script of ours built (say, an official image pulled by a developer).
exit_if_up_to_date() {
	local image=$1 hash=$2 force=$3 existing
	[ -z "$force" ] || return 0
	docker image inspect "$image" >/dev/null 2>&1 || return 0
	existing=$(image_label "$image" "$build_label")
	if [ "$existing" = "$hash" ]; then
		echo "$image is up to date"
		exit 0
	fi
	[ -n "$existing" ] || die "$image exists and was not built by this script; pass --force to replace it"
}

# rootfs_init ROOT creates the skeleton of a root filesystem, mirroring the host's
# merged-/usr layout (bin -> usr/bin, ...) so that paths compiled into binaries
# (e.g. the ELF interpreter /lib64/ld-linux-x86-64.so.2) resolve the same way.
rootfs_init() {
	local root=$1 d
	mkdir -p "$root"/usr/bin "$root"/usr/lib "$root"/usr/local/bin "$root"/etc \
		"$root"/dev "$root"/proc "$root"/sys "$root"/run "$root"/var "$root"/tmp
	chmod 1777 "$root"/tmp
	for d in bin sbin lib lib32 lib64 libx32; do
		if [ -L "/$d" ]; then
			ln -sfn "$(readlink "/$d")" "$root/$d"
			mkdir -p "$root/$(readlink -f "/$d")"
		fi
	done
	ln -sfn ../run "$root"/var/run
}

# copy_path ROOT PATH copies PATH from the host into ROOT at the same place. Every
# symbolic link met on the way (e.g. /usr/bin/awk -> /etc/alternatives/awk ->
# /usr/bin/mawk, or /lib64/ld-linux-x86-64.so.2 -> ../lib/...) is recreated as a link,
# so the name a binary asks for and the file behind it both exist in ROOT.
copy_path() {
	local root=$1 path=$2 dir target
	while :; do
		# Resolve the directory part on the host: ROOT has the same top-level links.
		dir=$(readlink -f "$(dirname "$path")") || die "cannot resolve $path"
		path=$dir/$(basename "$path")
		mkdir -p "$root$dir"
		if [ -L "$path" ]; then
			target=$(readlink "$path")
			[ -e "$root$path" ] || [ -L "$root$path" ] || ln -s "$target" "$root$path"
			case $target in
			/*) path=$target ;;
			*) path=$dir/$target ;;
			esac
			continue
		fi
		[ -e "$path" ] || die "missing on the host: $path"
		if [ -d "$path" ]; then
			mkdir -p "$root$path"
			cp -a "$path/." "$root$path/"
		elif [ ! -e "$root$path" ]; then
			cp -a "$path" "$root$path"
		fi
		return 0
	done
}

# elf_deps FILE... prints the shared libraries (and the dynamic loader) that ldd lists
# for the given ELF files, one absolute path per line, without duplicates. Files that
# are not dynamic ELF objects are ignored; so are libraries ldd cannot find, which
# would be equally missing on the host.
elf_deps() {
	local f
	for f in "$@"; do
		ldd "$f" 2>/dev/null || true
	done | awk '
		$2 == "=>" && $3 ~ /^\// { print $3; next }
		$1 ~ /^\// { print $1 }
	' | sort -u
}

# copy_with_deps ROOT FILE... copies files (following the links to them) and the
# shared libraries they need.
copy_with_deps() {
	local root=$1 f
	shift
	for f in "$@"; do
		copy_path "$root" "$f"
	done
	for f in $(elf_deps "$@"); do
		copy_path "$root" "$f"
	done
}

# copy_tools ROOT NAME... copies the named commands, as found on PATH, with their
# libraries.
copy_tools() {
	local root=$1 name path
	shift
	for name in "$@"; do
		path=$(command -v "$name") || die "command not found on the host: $name"
		copy_with_deps "$root" "$path"
	done
}

# import_rootfs ROOT IMAGE UID:GID OWNED CHANGE... turns ROOT into IMAGE. Everything
# belongs to root except the space-separated ROOT-relative paths in OWNED, which belong
# to UID:GID (the service's data and socket directories). Ownership is set in the
# archive (--owner/--group) rather than with chown, so the folder can be assembled
# without root privileges. CHANGE arguments are passed to `docker import --change`.
import_rootfs() {
	local root=$1 image=$2 owner=$3 tarball previous p
	local owned=() excludes=() changes=()
	read -ra owned <<<"$4"
	shift 4
	for p in "${owned[@]}"; do
		excludes+=("--exclude=./$p")
	done
	for p in "$@"; do
		changes+=(--change "$p")
	done
	previous=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
	tarball=$(mktemp "${TMPDIR:-/tmp}/rootfs.XXXXXX.tar")
	if tar --numeric-owner --owner=0 --group=0 "${excludes[@]}" -C "$root" -cf "$tarball" . &&
		tar --numeric-owner --owner="${owner%%:*}" --group="${owner##*:}" \
			-C "$root" -rf "$tarball" "${owned[@]/#/./}" &&
		docker import "${changes[@]}" "$tarball" "$image" >/dev/null; then
		rm -f "$tarball"
		# The image this one replaces is left untagged; remove it unless a container
		# still uses it.
		if [ -n "$previous" ]; then
			docker image rm "$previous" >/dev/null 2>&1 || true
		fi
		return 0
	fi
	rm -f "$tarball"
	die "docker import of $image failed"
}

# install_without_service PACKAGE: apt-get installs PACKAGE on the host for its
# binaries only (needs root). Debian's maintainer scripts would start the
# package's service; a policy-rc.d that answers 101 tells them not to.
install_without_service() {
	local pkg=$1 policy='' status=0
	[ "$(id -u)" = 0 ] || die "$pkg is not installed, and installing it needs root"
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
	fi
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" || status=$?
	[ -z "$policy" ] || rm -f "$policy"
	[ "$status" = 0 ] || die "apt-get install $pkg failed"
}
