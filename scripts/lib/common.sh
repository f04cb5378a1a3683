# Shared by scripts/run-sample and scripts/test (sourced, not run).
#
# Provides: ROOT, TARGET_DIR, step, die, ensure_rust_components, ensure_reference_python.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

# Follow CARGO_TARGET_DIR like cargo does (relative paths are relative to the root).
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" = /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"

# The reference backend: Microsoft's Python SDK, which ships an in-memory backend, and
# what the tests use beside it, pinned in tests/requirements.txt.
REFERENCE_REQUIREMENTS="$ROOT/tests/requirements.txt"
# The same venv, with the same ready marker, as the test harness (tests/src/python.rs):
# the marker holds the requirements it was built from, so a change rebuilds it.
REFERENCE_VENV="$TARGET_DIR/reference-venv"
REFERENCE_VENV_MARKER="requirements.ready"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# rustfmt and clippy come with rustup's default profile, but not with the minimal one.
ensure_rust_components() {
    command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (https://rustup.rs)"
    local missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    if ((${#missing[@]})); then
        command -v rustup >/dev/null || die "cargo ${missing[*]} missing and rustup not found to add them"
        step "Adding Rust components: ${missing[*]}"
        rustup component add "${missing[@]}"
    fi
}

# Prints the Python interpreter that runs the reference backend, creating the venv on
# first use. DURABLETASK_REFERENCE_PYTHON overrides it. The venv is built beside its
# final place and renamed into it, so concurrent runs (and the tests) never see half of one.
ensure_reference_python() {
    if [[ -n "${DURABLETASK_REFERENCE_PYTHON:-}" ]]; then
        echo "$DURABLETASK_REFERENCE_PYTHON"
        return
    fi
    if ! cmp -s "$REFERENCE_VENV/$REFERENCE_VENV_MARKER" "$REFERENCE_REQUIREMENTS" \
        || [[ ! -x "$REFERENCE_VENV/bin/python" ]]; then
        local python3="${PYTHON:-python3}"
        command -v "$python3" >/dev/null || die "python3 not found: install Python 3.11 with venv"
        step "Creating the reference venv (tests/requirements.txt) in $REFERENCE_VENV"
        mkdir -p "$TARGET_DIR"
        local staging
        staging="$(mktemp -d "$TARGET_DIR/reference-venv.tmp-XXXXXX")"
        if ! "$python3" -m venv "$staging" >&2; then
            rm -rf "$staging"
            die "could not create a venv: install Python's venv module (Debian: apt-get install python3-venv)"
        fi
        if ! "$staging/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$REFERENCE_REQUIREMENTS" >&2; then
            rm -rf "$staging"
            die "could not install tests/requirements.txt from PyPI"
        fi
        cp "$REFERENCE_REQUIREMENTS" "$staging/$REFERENCE_VENV_MARKER"
        # mv -T refuses to replace a non-empty directory: if another run won, keep its venv.
        if ! mv -T "$staging" "$REFERENCE_VENV" 2>/dev/null; then
            rm -rf "$staging"
            if ! cmp -s "$REFERENCE_VENV/$REFERENCE_VENV_MARKER" "$REFERENCE_REQUIREMENTS"; then
                # A broken leftover is in the way: replace it.
                rm -rf "$REFERENCE_VENV"
                ensure_reference_python
                return
            fi
        fi
    fi
    echo "$REFERENCE_VENV/bin/python"
}

# Installs Debian's package $1 unless command $2 (a name on the PATH, or a path) is
# already there (as root, or through sudo without a password). The operations tests run
# a real Prometheus server and promtool from `prometheus`, the mutual TLS test nginx as a
# TLS terminator.
ensure_debian_package() {
    local package=$1 command=$2
    [[ -x $command ]] || command -v "$command" >/dev/null && return 0
    install_debian_package "$package"
    [[ -x $command ]] || command -v "$command" >/dev/null \
        || die "$package is installed but $command is not on the PATH"
}

# apt-get install PACKAGE (as root, or through sudo), updating the package lists once if
# the first try fails.
install_debian_package() {
    local package=$1
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "$package is not installed and this user cannot install it: apt-get install $package"
        sudo=(sudo -n)
    fi
    step "apt-get install $package"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "$package" >&2 \
        || { "${sudo[@]}" apt-get update >&2 &&
             DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "$package" >&2; } \
        || die "cannot install $package (apt-get install $package)"
}

# The browser tests' kit: Debian's Chromium and playwright-core (tests/browser, pinned by
# its package.json and package-lock.json; `npm ci` when it is missing or another version).
ensure_browser_kit() {
    ensure_debian_package chromium /usr/bin/chromium
    command -v node >/dev/null || install_debian_package nodejs
    command -v npm >/dev/null || install_debian_package npm
    local kit="$ROOT/tests/browser" wanted installed
    wanted=$(node -p "require('$kit/package.json').dependencies['playwright-core']")
    installed=$(node -p "require('$kit/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
    if [[ $wanted != "$installed" ]]; then
        step "npm ci (tests/browser: playwright-core $wanted)"
        (cd "$kit" && npm ci --no-audit --no-fund --loglevel=error >&2) \
            || die "npm ci in $kit failed (the npm registry must be reachable the first time)"
    fi
}
