//! `[embedded] database`: a SQLite file (the default) or a PostgreSQL database that
//! several hosts share (`postgres://...`, issue 15).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// Where the embedded backend keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A SQLite file, resolved against the config file's folder.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`), taken as it is.
    Postgres(String),
}

impl DatabaseLocation {
    /// The SQLite file, if the state is in one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            DatabaseLocation::Sqlite(path) => Some(path),
            DatabaseLocation::Postgres(_) => None,
        }
    }

    /// A file path is made relative to `base`; a URL is not a path and stays as it is.
    pub(crate) fn resolved(self, base: &Path) -> DatabaseLocation {
        match self {
            DatabaseLocation::Sqlite(path) => DatabaseLocation::Sqlite(base.join(path)),
            postgres => postgres,
        }
    }
}

impl Default for DatabaseLocation {
    fn default() -> Self {
        DatabaseLocation::Sqlite(PathBuf::from("data/durabletask.sqlite"))
    }
}

/// For log lines: a URL without its password.
impl fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseLocation::Sqlite(path) => write!(f, "{}", path.display()),
            DatabaseLocation::Postgres(url) => f.write_str(&without_password(url)),
        }
    }
}

impl<'de> Deserialize<'de> for DatabaseLocation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Err(serde::de::Error::custom(
                "an empty database: name a SQLite file or a postgres:// URL",
            ));
        }
        Ok(
            if text.starts_with("postgres://") || text.starts_with("postgresql://") {
                DatabaseLocation::Postgres(text)
            } else {
                DatabaseLocation::Sqlite(PathBuf::from(text))
            },
        )
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`: the user part ends
/// at the last '@' (a password may hold an unescaped one), and a `password=` in the query
/// string is masked too.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let query = query.map(|query| {
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(query) => format!("{scheme}://{authority}?{query}"),
        None => format!("{scheme}://{authority}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        database: DatabaseLocation,
    }

    fn parse(text: &str) -> Result<DatabaseLocation, String> {
        toml::from_str::<Holder>(text)
            .map(|holder| holder.database)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn a_url_is_postgres_and_anything_else_a_sqlite_file() {
        assert_eq!(
            parse("database = \"postgres://dt@db:5432/hub\"").unwrap(),
            DatabaseLocation::Postgres("postgres://dt@db:5432/hub".into())
        );
        assert_eq!(
            parse("database = \"postgresql://db/hub\"").unwrap(),
            DatabaseLocation::Postgres("postgresql://db/hub".into())
        );
        assert_eq!(
            parse("database = \"state.sqlite\"").unwrap(),
            DatabaseLocation::Sqlite("state.sqlite".into())
        );
        assert!(
            parse("database = \"\"")
                .unwrap_err()
                .contains("empty database")
        );
    }

    #[test]
    fn only_a_file_is_resolved_against_the_config_folder() {
        let base = Path::new("/etc/dt");
        assert_eq!(
            DatabaseLocation::Sqlite("state.sqlite".into()).resolved(base),
            DatabaseLocation::Sqlite("/etc/dt/state.sqlite".into())
        );
        let url = DatabaseLocation::Postgres("postgres://db/hub".into());
        assert_eq!(url.clone().resolved(base), url);
    }

    #[test]
    fn a_password_never_reaches_a_log_line() {
        let url = DatabaseLocation::Postgres("postgres://dt:s3cret@db:5432/hub".into());
        assert_eq!(url.to_string(), "postgres://dt:***@db:5432/hub");
        assert!(!url.to_string().contains("s3cret"));
        // An unescaped '@' in the password, and a password in the query string.
        let url = DatabaseLocation::Postgres("postgres://dt:p@ss@db/hub".into());
        assert_eq!(url.to_string(), "postgres://dt:***@db/hub");
        let url = DatabaseLocation::Postgres(
            "postgres://db/hub?user=dt&password=s3cret&sslmode=require".into(),
        );
        assert_eq!(
            url.to_string(),
            "postgres://db/hub?user=dt&password=***&sslmode=require"
        );
    }
}
