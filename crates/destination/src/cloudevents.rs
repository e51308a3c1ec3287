//! The CloudEvents 1.0 rules that both ways share: reading a CloudEvent in (`switchyard-model`)
//! and rendering one out (the `cloudevents-*` formats here), so that what comes in as a
//! CloudEvent goes out as the same one.

/// The context attributes that are not extensions, and the members that carry the data.
pub const CONTEXT_ATTRIBUTES: [&str; 10] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];

/// Whether `name` is a valid attribute name: lowercase ASCII letters and digits.
pub fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether `name` can be an extension attribute: a valid name that is not a context attribute.
pub fn is_extension_name(name: &str) -> bool {
    is_attribute_name(name) && !CONTEXT_ATTRIBUTES.contains(&name)
}

/// A `content-type`'s media type without its parameters, in lowercase: `application/json` of
/// `Application/JSON; charset=utf-8`. (Not CloudEvents' alone: webhook bodies are read by it
/// too.)
pub fn media_type_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// JSON media types as the CloudEvents JSON format reads them: `application/json`, `text/json`
/// and any `+json` suffix, parameters aside. No media type counts as JSON.
pub fn is_json_media_type(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let essence = media_type_essence(content_type);
    essence.split_once('/').is_some_and(|(kind, subtype)| {
        (kind == "application" || kind == "text")
            && (subtype == "json" || subtype.ends_with("+json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_and_attribute_names() {
        for json in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
            Some("text/json"),
            Some("application/vnd.acme+json"),
        ] {
            assert!(is_json_media_type(json), "{json:?}");
        }
        for other in [
            "text/plain",
            "application/octet-stream",
            "json",
            "image/png",
        ] {
            assert!(!is_json_media_type(Some(other)), "{other}");
        }
        assert!(is_extension_name("tenant2"));
        assert!(!is_extension_name("subject") && !is_extension_name("Tenant"));
        assert!(!is_attribute_name("") && !is_attribute_name("a-b"));
    }
}
