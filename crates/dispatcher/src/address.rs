//! The destination address policy: which IP addresses deliveries may go to.
//!
//! Subscriptions are written through the API, so a destination URL is untrusted input: pointed at
//! a cloud metadata service it would hand out the node's credentials. The policy is enforced where
//! the address is known: for IP literals before the request is sent, for names in the DNS
//! resolver (so a name that resolves to a refused address is refused too, whatever it looks like).
//! Refusals are not retried: the delivery becomes a dead letter `invalid_destination`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use switchyard_model::Network;

/// Allow and deny lists of networks. Deny wins; an empty allow list allows everything not denied.
#[derive(Debug, Clone)]
pub struct AddressPolicy {
    allow: Vec<Network>,
    deny: Vec<Network>,
}

/// Link-local (where cloud metadata services live, 169.254.169.254) and AWS's IPv6 metadata
/// address: refused unless an operator says otherwise.
pub const DEFAULT_DENY: [&str; 2] = ["169.254.0.0/16", "fd00:ec2::254"];

impl Default for AddressPolicy {
    fn default() -> Self {
        let deny = DEFAULT_DENY
            .iter()
            .filter_map(|text| Network::parse(text).ok())
            .collect();
        AddressPolicy {
            allow: Vec::new(),
            deny,
        }
    }
}

impl AddressPolicy {
    pub fn new(allow: Vec<Network>, deny: Vec<Network>) -> AddressPolicy {
        AddressPolicy { allow, deny }
    }

    /// The address a URL names literally, when the policy refuses it. Names are checked when
    /// they resolve; an address written in the URL never reaches the resolver.
    pub fn refused_literal(&self, url: &str) -> Option<IpAddr> {
        let address: IpAddr = match url::Url::parse(url).ok()?.host()? {
            url::Host::Ipv4(ip) => ip.into(),
            url::Host::Ipv6(ip) => ip.into(),
            url::Host::Domain(_) => return None,
        };
        (!self.permits(address)).then_some(address)
    }

    pub fn permits(&self, address: IpAddr) -> bool {
        !self.deny.iter().any(|n| n.contains(address))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(address)))
    }
}

/// The resolver error for a name whose every address the policy refuses; the attempt code finds
/// it in the error chain to dead-letter instead of retrying.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses the destination policy refuses")]
pub(crate) struct AddressRefused {
    host: String,
}

/// A DNS resolver that drops the addresses the policy refuses.
pub(crate) struct PolicyResolver {
    pub(crate) policy: Arc<AddressPolicy>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|a| policy.permits(a.ip())).collect();
            if allowed.is_empty() {
                return Err(
                    Box::new(AddressRefused { host }) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_default_refuses_metadata_addresses_only() {
        let policy = AddressPolicy::default();
        assert!(!policy.permits(ip("169.254.169.254")));
        assert!(!policy.permits(ip("fd00:ec2::254")));
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("10.1.2.3")));
    }

    #[test]
    fn deny_wins_over_allow() {
        let net = |t: &str| Network::parse(t).unwrap();
        let policy = AddressPolicy::new(vec![net("10.0.0.0/8")], vec![net("10.9.0.0/16")]);
        assert!(policy.permits(ip("10.1.0.1")));
        assert!(!policy.permits(ip("10.9.0.1")));
        assert!(!policy.permits(ip("192.0.2.1")));
    }
}
