#!/bin/sh
# Entrypoint of the userservice-test-redis image (see build.sh beside this file).
#
# Like the official redis image's entrypoint, in POSIX sh (the image has dash):
#   - arguments that start with "-" or name a .conf file are arguments of
#     redis-server, which testcontainers-go's modules/redis relies on (its options add
#     "--loglevel ...", "/usr/local/redis.conf", ... to the command);
#   - redis-server runs with protected mode off, so that a server without a password
#     accepts connections from the Docker host: the official image's redis-server is
#     compiled that way, Debian's is not, so it is said on the command line, right
#     after the configuration file (if any) so that the file, or a later
#     --protected-mode argument, still decides.
# The image runs as the redis user, who owns the working directory /data.
set -eu

case ${1:-} in
-* | *.conf) set -- redis-server "$@" ;;
esac

if [ "${1:-}" = redis-server ]; then
	shift
	conf=
	case ${1:-} in
	-* | '') ;;
	*)
		conf=$1
		shift
		;;
	esac
	if [ -z "$conf" ]; then
		set -- redis-server --protected-mode no "$@"
	elif grep -qiE '^[[:space:]]*protected-mode[[:space:]]' "$conf"; then
		set -- redis-server "$conf" "$@"
	else
		set -- redis-server "$conf" --protected-mode no "$@"
	fi
fi

exec "$@"
