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
    # The server itself, not only postgresql-common's tools (which outlive a removed
    # server package).
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || install_debian_package postgresql
    ensure_debian_package postgresql /usr/bin/pg_ctlcluster
    local version
    version=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -1 | cut -d/ -f5)
    [[ -n $version ]] || die "postgresql is installed but no server is in /usr/lib/postgresql"
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
    ensure_postgres_tls "${sudo[@]}"
    echo "postgres://$POSTGRES_ROLE:$POSTGRES_PASSWORD@127.0.0.1:$POSTGRES_PORT/postgres"
}

# The test cluster's TLS: a CA of its own (not the distribution's snakeoil certificate,
# whose name is the machine's), and a server certificate it signed for localhost and
# 127.0.0.1, so that tests connect with sslmode=require and check the server against
# $POSTGRES_TLS_DIR/ca.crt. Made once; the cluster is pointed at it (a reload, no
# restart).
POSTGRES_TLS_DIR=/var/lib/postgresql/durabletask-test-tls

ensure_postgres_tls() {
    local sudo=("$@") dir=$POSTGRES_TLS_DIR
    if [[ ! -f $dir/server.crt ]]; then
        step "a test CA and server certificate for the PostgreSQL test cluster"
        "${sudo[@]}" install -d -m 0755 "$dir"
        "${sudo[@]}" openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
            -subj "/CN=durabletask test CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null \
            || die "cannot make the test CA"
        "${sudo[@]}" openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null \
            || die "cannot make the test server key"
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' \
            | "${sudo[@]}" tee "$dir/server.ext" >/dev/null
        "${sudo[@]}" openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
            -CAcreateserial -days 3650 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null \
            || die "cannot sign the test server certificate"
        "${sudo[@]}" chown postgres:postgres "$dir/server.key" "$dir/server.crt"
        "${sudo[@]}" chmod 0600 "$dir/server.key" "$dir/ca.key"
        "${sudo[@]}" chmod 0644 "$dir/ca.crt" "$dir/server.crt"
    fi
    "${sudo[@]}" runuser -u postgres -- psql -q -p "$POSTGRES_PORT" -v ON_ERROR_STOP=1 >&2 <<SQL \
        || die "cannot point the PostgreSQL test cluster at its TLS certificate"
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = '$dir/server.crt';
ALTER SYSTEM SET ssl_key_file = '$dir/server.key';
SELECT pg_reload_conf();
SQL
}
