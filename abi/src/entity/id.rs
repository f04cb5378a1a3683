//! [`EntityInstanceId`]: the `@name@key` address of an entity (spec §6.1).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The address of one entity: its (case-insensitive) name and its (case-sensitive) key.
///
/// The name is the name the entity is registered under and is kept lowercase; the key
/// tells the instances of that entity apart and keeps its case. Neither may be empty or
/// contain `@`. The string form is `@name@key`, which is also how ids travel on the wire,
/// how they are ordered (ordinal comparison of the string form, the global lock order of
/// critical sections) and how they are serialized with serde.
///
/// # Examples
///
/// ```
/// use durabletask_abi::entity::EntityInstanceId;
///
/// let id = EntityInstanceId::new("Counter", "Tokyo")?;
/// assert_eq!(id.name(), "counter");
/// assert_eq!(id.key(), "Tokyo");
/// assert_eq!(id.to_string(), "@counter@Tokyo");
///
/// let parsed: EntityInstanceId = "@COUNTER@Tokyo".parse()?;
/// assert_eq!(parsed, id);
/// assert!("counter@Tokyo".parse::<EntityInstanceId>().is_err());
/// # Ok::<(), durabletask_abi::entity::InvalidEntityId>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EntityInstanceId {
    name: String,
    key: String,
}

/// Why a name, a key or a string is not a valid [`EntityInstanceId`].
///
/// # Examples
///
/// ```
/// use durabletask_abi::entity::EntityInstanceId;
///
/// let error = EntityInstanceId::new("", "k").unwrap_err();
/// assert!(error.to_string().contains("empty"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEntityId(String);

fn check_part(what: &str, value: &str) -> Result<(), InvalidEntityId> {
    if value.is_empty() {
        return Err(InvalidEntityId(format!(
            "an entity {what} must not be empty"
        )));
    }
    if value.contains('@') {
        return Err(InvalidEntityId(format!(
            "an entity {what} must not contain '@' (got '{value}')"
        )));
    }
    Ok(())
}

impl EntityInstanceId {
    /// An id from a name and a key. Both must be non-empty and free of `@`; the name is
    /// lowercased, the key kept as is.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_abi::entity::EntityInstanceId;
    ///
    /// let id = EntityInstanceId::new("MyEntity", "instance1")?;
    /// assert_eq!(id, EntityInstanceId::new("myentity", "instance1")?);
    /// assert!(EntityInstanceId::new("my@entity", "instance1").is_err());
    /// # Ok::<(), durabletask_abi::entity::InvalidEntityId>(())
    /// ```
    pub fn new(name: impl AsRef<str>, key: impl Into<String>) -> Result<Self, InvalidEntityId> {
        let name = name.as_ref();
        let key = key.into();
        check_part("name", name)?;
        check_part("key", &key)?;
        Ok(Self {
            name: name.to_lowercase(),
            key,
        })
    }

    /// Parses the `@name@key` form; the same as [`str::parse`].
    ///
    /// The string must start with `@` and split at its first two `@` into a non-empty name
    /// and a non-empty key; a third `@` is refused (as the reference Python SDK does). The
    /// name is lowercased.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_abi::entity::EntityInstanceId;
    ///
    /// let id = EntityInstanceId::parse("@MyEntity@TestInstance")?;
    /// assert_eq!((id.name(), id.key()), ("myentity", "TestInstance"));
    /// for bad in ["", "@", "@@", "@name@", "@@key", "name@key", "@a@b@c"] {
    ///     assert!(EntityInstanceId::parse(bad).is_err(), "{bad}");
    /// }
    /// # Ok::<(), durabletask_abi::entity::InvalidEntityId>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, InvalidEntityId> {
        let malformed = || {
            InvalidEntityId(format!(
                "'{text}' is not an entity instance id: expected '@name@key', with a non-empty \
                 name and key and no other '@'"
            ))
        };
        let (name, key) = text
            .strip_prefix('@')
            .and_then(|rest| rest.split_once('@'))
            .ok_or_else(malformed)?;
        Self::new(name, key).map_err(|_| malformed())
    }

    /// The entity's name, lowercase: the name it is registered under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key: which instance of the entity this is.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The bytes of the string form, without building it.
    fn form(&self) -> impl Iterator<Item = u8> + '_ {
        std::iter::once(b'@')
            .chain(self.name.bytes())
            .chain(std::iter::once(b'@'))
            .chain(self.key.bytes())
    }
}

impl fmt::Display for EntityInstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}@{}", self.name, self.key)
    }
}

impl fmt::Debug for EntityInstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityInstanceId(\"{self}\")")
    }
}

impl FromStr for EntityInstanceId {
    type Err = InvalidEntityId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<&str> for EntityInstanceId {
    type Error = InvalidEntityId;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        Self::parse(text)
    }
}

impl From<EntityInstanceId> for String {
    fn from(id: EntityInstanceId) -> Self {
        id.to_string()
    }
}

/// Ordinal comparison of the string forms (`@name@key`), the order lock sets are sorted in.
impl Ord for EntityInstanceId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.form().cmp(other.form())
    }
}

impl PartialOrd for EntityInstanceId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl serde::Serialize for EntityInstanceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EntityInstanceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Spec §8 scenario 47.
    #[test]
    fn parsing_lowercases_the_name_and_keeps_the_key() {
        let id: EntityInstanceId = "@MyEntity@TestInstance".parse().unwrap();
        assert_eq!(id.name(), "myentity");
        assert_eq!(id.key(), "TestInstance");
        assert_eq!(id.to_string(), "@myentity@TestInstance");
    }

    /// Spec §8 scenario 48.
    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(
            EntityInstanceId::new("MyEntity", "instance1").unwrap(),
            EntityInstanceId::new("myentity", "instance1").unwrap()
        );
        assert_ne!(
            EntityInstanceId::new("e", "Key").unwrap(),
            EntityInstanceId::new("e", "key").unwrap()
        );
    }

    /// Spec §8 scenario 49.
    #[test]
    fn malformed_ids_fail_to_parse() {
        for bad in [
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
            let error = bad.parse::<EntityInstanceId>().unwrap_err();
            assert!(error.to_string().contains("@name@key"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_constructor_validates_both_parts() {
        assert!(EntityInstanceId::new("", "k").is_err());
        assert!(EntityInstanceId::new("n", "").is_err());
        assert!(EntityInstanceId::new("n@", "k").is_err());
        assert!(EntityInstanceId::new("n", "k@").is_err());
    }

    #[test]
    fn ordering_is_ordinal_over_the_string_form() {
        let a = EntityInstanceId::new("a", "k").unwrap();
        let a_bang = EntityInstanceId::new("a!", "k").unwrap();
        // "@a!@k" < "@a@k" because '!' < '@', although "a" < "a!".
        assert!(a_bang < a);
        assert_eq!(a_bang.to_string() < a.to_string(), a_bang < a);
        let mut ids = [
            EntityInstanceId::new("counter", "b").unwrap(),
            EntityInstanceId::new("Counter", "B").unwrap(),
            EntityInstanceId::new("account", "z").unwrap(),
        ];
        ids.sort();
        let forms: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(forms, ["@account@z", "@counter@B", "@counter@b"]);
    }

    #[test]
    fn serde_uses_the_string_form() {
        let id = EntityInstanceId::new("Counter", "k").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""@counter@k""#);
        let back: EntityInstanceId = serde_json::from_str(r#""@COUNTER@k""#).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<EntityInstanceId>(r#""counter""#).is_err());
    }
}
