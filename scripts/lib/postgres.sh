# PostgreSQL for the tests (issue 15): Debian's package, a cluster of our own on port
# 55432 (never the distribution's `main` cluster, which may be someone's), a role that may
# create databases. Idempotent: a running cluster is left as it is. Sourced after
# common.sh; prints the connection URL the tests read from DURABLETASK_TEST_POSTGRES.

POSTGRES_PORT=${DURABLETASK_TEST_POSTGRES_PORT:-55432}
POSTGRES_CLUSTER=durabletask
POSTGRES_ROLE=durabletask_test
# A test cluster on loopback only: the password keeps other local users out of it, not
# secrets in it.
POSTGRES_PASSWORD=durabletask_test

ensure_postgres() {
    ensure_debian_package postgresql /usr/bin/pg_ctlcluster
    local version
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    [[ -n $version ]] || die "postgresql is installed but /usr/lib/postgresql is empty"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
    if ! pg_lsclusters -h | awk '{print $2}' | grep -qx "$POSTGRES_CLUSTER"; then
        step "pg_createcluster $version $POSTGRES_CLUSTER (port $POSTGRES_PORT)"
        "${sudo[@]}" pg_createcluster "$version" "$POSTGRES_CLUSTER" -p "$POSTGRES_PORT" \
            -- --auth-host=scram-sha-256 --auth-local=peer >&2 \
            || die "cannot create the PostgreSQL cluster $POSTGRES_CLUSTER"
        # It listens on localhost only, PostgreSQL's default.
    fi
    if ! pg_lsclusters -h | awk -v c="$POSTGRES_CLUSTER" '$2 == c {print $4}' | grep -qx online; then
        step "pg_ctlcluster $version $POSTGRES_CLUSTER start"
        "${sudo[@]}" pg_ctlcluster "$version" "$POSTGRES_CLUSTER" start >&2 \
            || die "cannot start the PostgreSQL cluster $POSTGRES_CLUSTER"
    fi
    local waited=0
    until pg_isready -q -h 127.0.0.1 -p "$POSTGRES_PORT"; do
        (( waited++ < 100 )) || die "PostgreSQL on port $POSTGRES_PORT did not become ready"
        sleep 0.1
    done
    "${sudo[@]}" runuser -u postgres -- psql -q -p "$POSTGRES_PORT" -v ON_ERROR_STOP=1 >&2 <<SQL \
        || die "cannot create the role $POSTGRES_ROLE"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$POSTGRES_ROLE') THEN
    CREATE ROLE $POSTGRES_ROLE LOGIN CREATEDB PASSWORD '$POSTGRES_PASSWORD';
  END IF;
END \$\$;
SQL
    echo "postgres://$POSTGRES_ROLE:$POSTGRES_PASSWORD@127.0.0.1:$POSTGRES_PORT/postgres"
}
