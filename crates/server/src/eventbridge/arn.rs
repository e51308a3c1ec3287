//! The ARNs the door issues and reads: `arn:aws:events:{region}:{account}:{resource}`, with the
//! region and account of `serve --aws-region` and `--aws-account-id`.
//!
//! Owns both directions, so that what `Describe*` answers is what every other call accepts.
//! Invariant: an ARN of this server names the same resource across restarts; the UUID that
//! EventBridge puts in connection and API-destination ARNs is derived from the resource's name
//! and creation time, not stored.

use switchyard_model::AwsIdentity;

/// What an ARN names, when it is one of this server's `events` ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resource {
    Bus(String),
    Rule { bus: String, name: String },
    Connection(String),
    ApiDestination(String),
    Archive(String),
    Replay(String),
}

/// Builds and reads ARNs for one account and region.
pub(crate) struct Arns<'a>(pub(crate) &'a AwsIdentity);

impl Arns<'_> {
    fn prefix(&self) -> String {
        format!("arn:aws:events:{}:{}:", self.0.region, self.0.account)
    }

    pub(crate) fn bus(&self, name: &str) -> String {
        format!("{}event-bus/{name}", self.prefix())
    }

    pub(crate) fn rule(&self, bus: &str, name: &str) -> String {
        self.0.rule_arn(bus, name)
    }

    pub(crate) fn connection(&self, name: &str, created_ms: u64) -> String {
        format!(
            "{}connection/{name}/{}",
            self.prefix(),
            stable_uuid(name, created_ms)
        )
    }

    pub(crate) fn api_destination(&self, name: &str, created_ms: u64) -> String {
        format!(
            "{}api-destination/{name}/{}",
            self.prefix(),
            stable_uuid(name, created_ms)
        )
    }

    pub(crate) fn archive(&self, name: &str) -> String {
        format!("{}archive/{name}", self.prefix())
    }

    pub(crate) fn replay(&self, name: &str) -> String {
        format!("{}replay/{name}", self.prefix())
    }

    /// The resource an ARN of this server names, or `None` for any other ARN (another service,
    /// account or region): such a target is stored but cannot be invoked.
    pub(crate) fn parse(&self, arn: &str) -> Option<Resource> {
        let rest = arn.strip_prefix(&self.prefix())?;
        let (kind, path) = rest.split_once('/')?;
        let mut parts = path.split('/');
        let first = parts.next().filter(|s| !s.is_empty())?.to_string();
        let second = parts.next();
        if parts.next().is_some() {
            return None;
        }
        match (kind, second) {
            ("event-bus", None) => Some(Resource::Bus(first)),
            ("rule", None) => Some(Resource::Rule {
                bus: super::DEFAULT_BUS.to_string(),
                name: first,
            }),
            ("rule", Some(name)) if !name.is_empty() => Some(Resource::Rule {
                bus: first,
                name: name.to_string(),
            }),
            // The UUID is not checked: an ARN from before a delete and re-create names the
            // new resource, which is what a script that kept it means.
            ("connection", Some(_)) => Some(Resource::Connection(first)),
            ("api-destination", Some(_)) => Some(Resource::ApiDestination(first)),
            ("archive", None) => Some(Resource::Archive(first)),
            ("replay", None) => Some(Resource::Replay(first)),
            _ => None,
        }
    }

    /// `EventBusName` as EventBridge takes it: a name or a bus ARN, `default` when absent.
    pub(crate) fn bus_name(&self, given: Option<&str>) -> Result<String, super::EbError> {
        match given {
            None | Some("") => Ok(super::DEFAULT_BUS.to_string()),
            Some(text) if text.starts_with("arn:") => match self.parse(text) {
                Some(Resource::Bus(name)) => Ok(name),
                _ => Err(super::EbError::validation(format!(
                    "EventBusName {text:?} is not an event bus ARN of this server ({})",
                    self.bus("NAME")
                ))),
            },
            Some(name) => Ok(name.to_string()),
        }
    }
}

/// A UUID from a name and a creation time (FNV-1a of the name: stable across builds, unlike
/// std's hasher), so that the ARN stays the same across restarts and changes on re-creation.
fn stable_uuid(name: &str, created_ms: u64) -> uuid::Uuid {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    uuid::Uuid::from_u64_pair(created_ms, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arn_issued_is_read_back_as_its_resource() {
        let identity = AwsIdentity::default();
        let arns = Arns(&identity);
        let cases = [
            (arns.bus("orders"), Resource::Bus("orders".into())),
            (
                arns.rule("default", "r1"),
                Resource::Rule {
                    bus: "default".into(),
                    name: "r1".into(),
                },
            ),
            (
                arns.rule("orders", "r1"),
                Resource::Rule {
                    bus: "orders".into(),
                    name: "r1".into(),
                },
            ),
            (arns.connection("c", 5), Resource::Connection("c".into())),
            (
                arns.api_destination("d", 5),
                Resource::ApiDestination("d".into()),
            ),
            (arns.archive("a"), Resource::Archive("a".into())),
            (arns.replay("p"), Resource::Replay("p".into())),
        ];
        for (arn, resource) in cases {
            assert_eq!(arns.parse(&arn), Some(resource), "{arn}");
        }
        assert_eq!(
            arns.rule("default", "r1"),
            "arn:aws:events:us-east-1:000000000000:rule/r1"
        );
    }

    #[test]
    fn arns_of_other_accounts_regions_and_services_are_not_ours() {
        let identity = AwsIdentity::default();
        let arns = Arns(&identity);
        for arn in [
            "arn:aws:events:eu-west-1:000000000000:event-bus/orders",
            "arn:aws:events:us-east-1:123456789012:event-bus/orders",
            "arn:aws:lambda:us-east-1:000000000000:function:f",
            "arn:aws:sqs:us-east-1:000000000000:queue",
            "arn:aws:events:us-east-1:000000000000:event-bus/",
            "arn:aws:events:us-east-1:000000000000:rule/a/b/c",
        ] {
            assert_eq!(arns.parse(arn), None, "{arn}");
        }
    }

    #[test]
    fn a_connection_arn_is_the_same_for_the_same_creation() {
        let identity = AwsIdentity::default();
        let arns = Arns(&identity);
        assert_eq!(arns.connection("c", 7), arns.connection("c", 7));
        assert_ne!(arns.connection("c", 7), arns.connection("c", 8));
    }
}
