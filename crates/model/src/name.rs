//! Names of buses, subscriptions, archives, replays, connections and sources.
//!
//! Names appear in URL paths, metric labels and config keys, so they are restricted to a small,
//! URL-safe alphabet that needs no escaping anywhere.

use crate::ModelError;

const MAX_NAME_LEN: usize = 64;

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
}
