//! Names and descriptions of buses, subscriptions, archives, replays, connections and sources.
//!
//! Names appear in URL paths, metric labels and config keys, so they are restricted to a small,
//! URL-safe alphabet that needs no escaping anywhere. Descriptions are free text for people,
//! bounded so that listing many resources stays small.

use crate::ModelError;

const MAX_NAME_LEN: usize = 64;
/// Bytes of a description: a sentence or a paragraph, never a document.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

/// Checks a resource's `description`: at most [`MAX_DESCRIPTION_BYTES`], no control characters
/// but newlines and tabs.
pub fn validate_description(description: Option<&str>) -> Result<(), ModelError> {
    let Some(text) = description else {
        return Ok(());
    };
    if text.len() > MAX_DESCRIPTION_BYTES {
        return Err(ModelError::invalid(format!(
            "field \"description\" is {} bytes; the limit is {MAX_DESCRIPTION_BYTES}",
            text.len()
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ModelError::invalid(
            "field \"description\" contains control characters",
        ));
    }
    Ok(())
}

/// Checks a bus or subscription name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), ModelError> {
    let well_formed = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if well_formed {
        Ok(())
    } else {
        Err(ModelError::invalid(format!(
            "{kind} name {name:?} is invalid: use 1 to {MAX_NAME_LEN} characters from A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_refuses_path_tricks() {
        assert!(validate_name("bus", "orders").is_ok());
        assert!(validate_name("bus", "orders.v2_eu-1").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(validate_name("bus", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn descriptions_are_bounded_text() {
        assert!(validate_description(None).is_ok());
        assert!(validate_description(Some("orders from the shop\n\tby region")).is_ok());
        assert!(validate_description(Some(&"x".repeat(MAX_DESCRIPTION_BYTES))).is_ok());
        let long = validate_description(Some(&"x".repeat(MAX_DESCRIPTION_BYTES + 1)));
        assert!(long.unwrap_err().to_string().contains("the limit is 1024"));
        assert!(validate_description(Some("bell\u{7}")).is_err());
    }
}
