//! Settings from the environment, the way container platforms and systemd units pass
//! them: `DURABLETASK_<SECTION>_<KEY>=value` sets `key` of `[section]`, over the file.
//!
//! Section names have no underscore, so the first one after the prefix ends the section
//! and the rest is the key (`DURABLETASK_WORKER_MAX_CONCURRENT_ACTIVITIES` is
//! `[worker] max_concurrent_activities`). Only the sections of the file are read, so
//! other variables of the same prefix (`DURABLETASK_TOKEN` for `token_env`, a test
//! harness's own) are not mistaken for settings. Nested tables
//! (`[plugins.overrides.<name>]`) are set in the file only.

use serde::Deserialize as _;

/// The prefix of every setting's variable.
pub const PREFIX: &str = "DURABLETASK_";

/// The sections a variable may name.
pub const SECTIONS: [&str; 8] = [
    "backend",
    "embedded",
    "worker",
    "versioning",
    "plugins",
    "logging",
    "admin",
    "tracing",
];

/// One variable that names a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Setting {
    variable: String,
    section: &'static str,
    key: String,
    value: String,
}

/// The settings among `env`, in the order of their names (so that the outcome does not
/// depend on the environment's order).
fn settings(env: impl IntoIterator<Item = (String, String)>) -> Vec<Setting> {
    let mut found: Vec<Setting> = env
        .into_iter()
        .filter_map(|(variable, value)| {
            let rest = variable.strip_prefix(PREFIX)?;
            let (section, key) = rest.split_once('_')?;
            let section = SECTIONS
                .into_iter()
                .find(|known| known.eq_ignore_ascii_case(section))?;
            let key = key.to_ascii_lowercase();
            Some(Setting {
                variable,
                section,
                key,
                value,
            })
        })
        .collect();
    found.sort_by(|a, b| a.variable.cmp(&b.variable));
    found
}

/// How a value may be read: as a boolean or a number when it looks like one, and always
/// as a string.
fn readings(value: &str) -> Vec<toml::Value> {
    let mut readings = Vec::new();
    match value {
        "true" => readings.push(toml::Value::Boolean(true)),
        "false" => readings.push(toml::Value::Boolean(false)),
        _ => {
            if let Ok(number) = value.parse::<i64>() {
                readings.push(toml::Value::Integer(number));
            } else if let Ok(number) = value.parse::<f64>() {
                readings.push(toml::Value::Float(number));
            }
        }
    }
    readings.push(toml::Value::String(value.to_owned()));
    readings
}

/// Applies the settings of `env` to the parsed file `given`. Returns whether any was
/// applied; an error names the variable and what is wrong with it.
pub fn apply(
    given: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<bool, String> {
    let settings = settings(env);
    for setting in &settings {
        let mut last_error = String::new();
        let mut applied = false;
        // The first reading the configuration accepts: "50" for a count is a number,
        // "1" for a version a string.
        for reading in readings(&setting.value) {
            let mut candidate = given.clone();
            let section = candidate
                .entry(setting.section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(section) = section.as_table_mut() else {
                return Err(format!(
                    "{}: [{}] in the file is not a table",
                    setting.variable, setting.section
                ));
            };
            section.insert(setting.key.clone(), reading);
            match super::Config::deserialize(toml::Value::Table(candidate.clone())) {
                Ok(_) => {
                    *given = candidate;
                    applied = true;
                    break;
                }
                Err(error) => last_error = error.to_string(),
            }
        }
        if !applied {
            return Err(format!(
                "environment variable {}={:?} ([{}] {}): {}",
                setting.variable,
                setting.value,
                setting.section,
                setting.key,
                last_error.trim()
            ));
        }
    }
    Ok(!settings.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn only_variables_that_name_a_section_are_settings() {
        let found = settings(env(&[
            ("DURABLETASK_WORKER_MAX_CONCURRENT_ACTIVITIES", "5"),
            ("DURABLETASK_TOKEN", "secret"),
            ("DURABLETASK_E2E_BACKEND", "embedded"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].section, "worker");
        assert_eq!(found[0].key, "max_concurrent_activities");
    }

    #[test]
    fn values_are_read_as_the_key_takes_them() {
        let mut given = toml::Table::new();
        let applied = apply(
            &mut given,
            env(&[
                ("DURABLETASK_WORKER_MAX_CONCURRENT_ACTIVITIES", "5"),
                ("DURABLETASK_WORKER_WORK_ITEM_FILTERS", "false"),
                ("DURABLETASK_BACKEND_TASKHUB", "123"),
                ("DURABLETASK_ADMIN_LISTEN", "127.0.0.1:0"),
            ]),
        )
        .unwrap_or_default();
        assert!(applied);
        assert_eq!(
            given["worker"]["max_concurrent_activities"].as_integer(),
            Some(5)
        );
        assert_eq!(given["worker"]["work_item_filters"].as_bool(), Some(false));
        assert_eq!(given["backend"]["taskhub"].as_str(), Some("123"));
        assert_eq!(given["admin"]["listen"].as_str(), Some("127.0.0.1:0"));
    }

    #[test]
    fn a_bad_value_or_an_unknown_key_names_the_variable() {
        let mut given = toml::Table::new();
        let error = apply(
            &mut given,
            env(&[("DURABLETASK_WORKER_MAX_CONCURENT_ACTIVITIES", "5")]),
        )
        .unwrap_err();
        assert!(
            error.contains("DURABLETASK_WORKER_MAX_CONCURENT_ACTIVITIES"),
            "{error}"
        );
        assert!(error.contains("max_concurent_activities"), "{error}");
        let error = apply(
            &mut given,
            env(&[("DURABLETASK_WORKER_MAX_CONCURRENT_ACTIVITIES", "lots")]),
        )
        .unwrap_err();
        assert!(error.contains("\"lots\""), "{error}");
    }
}
