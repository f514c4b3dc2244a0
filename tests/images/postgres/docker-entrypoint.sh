#!/bin/sh
# Entrypoint of the userservice-test-postgres image (see build.sh beside this file).
#
# It honours the part of the official postgres image's contract that
# testcontainers-go's modules/postgres relies on, in POSIX sh because the image has
# dash and no bash:
#   - env POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
#     POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default: the user name),
#     POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD, PGDATA;
#   - arguments: `postgres -c fsync=off`, or just `-c fsync=off`;
#   - /docker-entrypoint-initdb.d/*.sql (run with psql) and *.sh (run when executable,
#     sourced otherwise; there is no bash, so they must be POSIX sh);
#   - on a fresh data directory the server is started twice, first listening on the
#     Unix socket only while initialising, then for real on every address with
#     password authentication for remote hosts, so "database system is ready to accept
#     connections" is logged twice, which modules/postgres waits for.
# Unlike the official image it cannot start as root and drop privileges (there is no
# su or gosu in it): the image runs as the postgres user, who owns PGDATA's parent.
set -eu

case ${1:-} in
-*) set -- postgres "$@" ;;
esac

if [ "${1:-}" != postgres ]; then
	exec "$@"
fi

if [ "$(awk '/^Uid:/ { print $2 }' /proc/self/status)" = 0 ]; then
	echo 'error: this image runs PostgreSQL as the postgres user and cannot drop privileges; do not run it as root' >&2
	exit 1
fi

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:=}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
# Exported for the init scripts, as the official image does.
export PGDATA POSTGRES_USER POSTGRES_DB POSTGRES_PASSWORD

# psql_run runs psql over the Unix socket as the superuser; extra arguments follow.
psql_run() {
	psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		echo 'error: POSTGRES_PASSWORD is not set; set it, or set POSTGRES_HOST_AUTH_METHOD=trust to allow connections without a password' >&2
		exit 1
	fi

	waldir=
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		waldir="--waldir=$POSTGRES_INITDB_WALDIR"
	fi
	# POSTGRES_INITDB_ARGS is split on blanks on purpose, as the official image does.
	# shellcheck disable=SC2086
	if [ -n "$POSTGRES_PASSWORD" ]; then
		printf '%s\n' "$POSTGRES_PASSWORD" |
			initdb --username="$POSTGRES_USER" --pwfile=/dev/stdin $waldir ${POSTGRES_INITDB_ARGS:-}
	else
		initdb --username="$POSTGRES_USER" $waldir ${POSTGRES_INITDB_ARGS:-}
	fi
	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

	# The temporary server listens on the socket only, so nothing outside can connect
	# before initialisation is over.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start

	if [ "$POSTGRES_DB" != postgres ]; then
		exists=$(psql_run --dbname postgres --tuples-only --no-align --set db="$POSTGRES_DB" <<'SQL'
SELECT 1 FROM pg_database WHERE datname = :'db';
SQL
)
		if [ -z "$exists" ]; then
			psql_run --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db";
SQL
		fi
	fi

	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] || continue
		case $f in
		*.sh)
			if [ -x "$f" ]; then
				echo "$0: running $f"
				"$f"
			else
				echo "$0: sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql)
			echo "$0: running $f"
			psql_run --dbname "$POSTGRES_DB" -f "$f"
			;;
		*) echo "$0: ignoring $f" ;;
		esac
	done

	pg_ctl -D "$PGDATA" -m fast -w stop
	echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
