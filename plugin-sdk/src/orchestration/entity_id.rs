//! Entity ids as orchestrations take them for now: `@name@key` strings (spec §6.1),
//! checked and put in canonical form (the name lowercased, the key as is).
//!
//! Stand-in until `crate::entity::EntityInstanceId` exists: the orchestration API will then
//! take that type, and this module goes away.

/// The canonical `@name@key` form of `id`, or why it is not an entity id. Like the
/// reference, the name and the key must be non-empty and free of `@`.
pub(crate) fn canonical(id: &str) -> Result<String, String> {
    let parsed = id
        .strip_prefix('@')
        .and_then(|rest| rest.split_once('@'))
        .filter(|(name, key)| !name.is_empty() && !key.is_empty() && !key.contains('@'));
    match parsed {
        Some((name, key)) => Ok(format!("@{}@{key}", name.to_lowercase())),
        None => Err(format!(
            "'{id}' is not an entity id: expected '@name@key', with a non-empty name and key \
             and no other '@'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn names_are_lowercased_and_keys_kept() {
        assert_eq!(
            canonical("@MyEntity@TestInstance").as_deref(),
            Ok("@myentity@TestInstance")
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        for id in [
            "",
            "invalidEntityId",
            "@",
            "@@",
            "@invalid@",
            "@@invalid",
            "invalid@symbolplacement",
            "invalid@symbol@placement",
            "@a@b@c",
        ] {
            assert!(canonical(id).is_err(), "{id}");
        }
    }
}
