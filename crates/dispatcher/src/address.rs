//! The destination address policy: which IP addresses switchyard's outbound requests may go to.
//!
//! Subscriptions and connections are written through the API, so every URL switchyard sends to
//! (a destination, an OAuth token endpoint) is untrusted input: pointed at a cloud metadata
//! service it would hand out the node's credentials. Every outbound request passes this one
//! policy, where its address is known: [`AddressPolicy::check_url`] for an address written in the
//! URL (when the API stores it and again before each request, since the lists may have changed
//! since), the [`PolicyResolver`] for a name when it resolves (so a name that resolves to a
//! refused address is refused too, whatever it looks like).
//!
//! Invariants: the unspecified addresses (`0.0.0.0/8`, `::`; Linux connects them to the local
//! host) are refused whatever the lists say; an IPv6 address that carries an IPv4 one
//! ([`embedded_ipv4`]) is refused when either form is denied. Refusals are not retried: the
//! delivery becomes a dead letter `invalid_destination`.
//!
//! Must not: resolve names itself outside the resolver (an address checked and then looked up
//! again could differ), or let an allow entry admit an unspecified address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use switchyard_model::{Network, embedded_ipv4};

/// Allow and deny lists of networks. Deny wins; an empty allow list allows everything not denied.
#[derive(Debug, Clone)]
pub struct AddressPolicy {
    allow: Vec<Network>,
    deny: Vec<Network>,
}

/// Refused unless an operator gives a deny list of their own: the link-local networks of both
/// families and the metadata services that live outside them. Each gives out the credentials of
/// the machine or the workload switchyard runs as.
pub const DEFAULT_DENY: [&str; 9] = [
    // IPv4 link-local: 169.254.169.254 (AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack),
    // 169.254.170.2 and 169.254.170.23 (AWS ECS and EKS credentials), 169.254.0.23 (Tencent),
    // 169.254.42.42 (Scaleway).
    "169.254.0.0/16",
    // IPv6 link-local: fe80::a9fe:a9fe (OpenStack).
    "fe80::/10",
    // AWS instance metadata over IPv6.
    "fd00:ec2::254",
    // AWS EKS Pod Identity agent over IPv6.
    "fd00:ec2::23",
    // Google Compute Engine metadata over IPv6.
    "fd20:ce::254",
    // Scaleway metadata over IPv6.
    "fd00:42::42",
    // Alibaba Cloud metadata.
    "100.100.100.200",
    // Azure WireServer (the VM agent's channel to the host).
    "168.63.129.16",
    // Oracle Cloud Classic metadata.
    "192.0.0.192",
];

/// Why a destination's address may not be sent to. The message names the address, never the
/// URL (a URL may hold secret query values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefused {
    /// The address is `0.0.0.0/8` or `::` (or carries one), which connects to this host.
    #[error("address {0} is unspecified (it reaches this host) and is never a destination")]
    Unspecified(IpAddr),
    /// The address, or the IPv4 address it carries, is denied or outside a non-empty allow list.
    #[error("address {0}{carried} is refused by the destination address policy", carried = carrying(.0))]
    Refused(IpAddr),
    /// Every address the host name resolved to was refused; holds the name.
    #[error("{0} resolves only to addresses the destination address policy refuses")]
    Name(String),
}

/// ` (IPv4 169.254.169.254)` for an IPv6 address that carries one: the part a reader must see
/// to understand why `64:ff9b::a9fe:a9fe` was refused.
fn carrying(address: &IpAddr) -> String {
    match address {
        IpAddr::V6(v6) => embedded_ipv4(*v6).map_or(String::new(), |v4| format!(" (IPv4 {v4})")),
        IpAddr::V4(_) => String::new(),
    }
}

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
    /// A policy of exactly these lists: unlike [`AddressPolicy::default`], it denies nothing but
    /// `deny` (and the unspecified addresses), so a caller that wants [`DEFAULT_DENY`] kept must
    /// include it.
    pub fn new(allow: Vec<Network>, deny: Vec<Network>) -> AddressPolicy {
        AddressPolicy { allow, deny }
    }

    /// The check for an outbound URL. An address written in the URL is checked here, since it
    /// never reaches the resolver; a name is checked when it resolves.
    pub fn check_url(&self, url: &url::Url) -> Result<(), AddressRefused> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(ip.into()),
            Some(url::Host::Ipv6(ip)) => self.check(ip.into()),
            Some(url::Host::Domain(_)) | None => Ok(()),
        }
    }

    /// The check for one address, written or resolved.
    pub fn check(&self, address: IpAddr) -> Result<(), AddressRefused> {
        let carried: Option<Ipv4Addr> = match address {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => embedded_ipv4(v6),
        };
        if address.is_unspecified() || carried.is_some_and(|v4| v4.octets()[0] == 0) {
            return Err(AddressRefused::Unspecified(address));
        }
        let forms = [Some(address), carried.map(IpAddr::from)];
        let within = |list: &[Network]| {
            forms
                .iter()
                .flatten()
                .any(|form| list.iter().any(|n| n.contains(*form)))
        };
        if within(&self.deny) || !(self.allow.is_empty() || within(&self.allow)) {
            return Err(AddressRefused::Refused(address));
        }
        Ok(())
    }
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
            let allowed: Vec<SocketAddr> = found.filter(|a| policy.check(a.ip()).is_ok()).collect();
            if allowed.is_empty() {
                return Err(Box::new(AddressRefused::Name(host))
                    as Box<dyn std::error::Error + Send + Sync>);
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

    fn net(text: &str) -> Network {
        Network::parse(text).unwrap()
    }

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    #[test]
    fn the_default_refuses_link_local_and_metadata_addresses_only() {
        let policy = AddressPolicy::default();
        for refused in [
            "169.254.169.254",
            "169.254.170.2",
            "fe80::1",
            "fe80::a9fe:a9fe",
            "fd00:ec2::254",
            "fd00:ec2::23",
            "fd20:ce::254",
            "fd00:42::42",
            "100.100.100.200",
            "168.63.129.16",
            "192.0.0.192",
        ] {
            assert_eq!(
                policy.check(ip(refused)),
                Err(AddressRefused::Refused(ip(refused))),
                "{refused}"
            );
        }
        for allowed in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "2001:db8::1",
            "64:ff9b::a00:1",
        ] {
            assert_eq!(policy.check(ip(allowed)), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn every_ipv6_form_of_a_denied_ipv4_address_is_refused() {
        for policy in [
            AddressPolicy::default(),
            AddressPolicy::new(Vec::new(), vec![net("169.254.169.254")]),
        ] {
            for form in [
                "http://[::ffff:169.254.169.254]/",
                "http://[::ffff:0:169.254.169.254]/",
                "http://[::169.254.169.254]/",
                "http://[64:ff9b::a9fe:a9fe]/",
                "http://[2002:a9fe:a9fe::1]/",
            ] {
                assert!(
                    matches!(
                        policy.check_url(&url(form)),
                        Err(AddressRefused::Refused(_))
                    ),
                    "{form}"
                );
            }
        }
        let loopback = AddressPolicy::new(Vec::new(), vec![net("127.0.0.0/8"), net("::1")]);
        for form in [
            "http://[::ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[::1]/",
            "http://127.1/",
            "http://0x7f.0.0.1/",
        ] {
            assert!(loopback.check_url(&url(form)).is_err(), "{form}");
        }
        let error = AddressPolicy::default()
            .check_url(&url("http://[64:ff9b::a9fe:a9fe]/"))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "address 64:ff9b::a9fe:a9fe (IPv4 169.254.169.254) is refused by the destination address policy"
        );
    }

    #[test]
    fn an_allowed_ipv4_network_admits_its_ipv6_forms() {
        let policy = AddressPolicy::new(vec![net("10.0.0.0/8")], Vec::new());
        assert_eq!(policy.check(ip("::ffff:10.1.2.3")), Ok(()));
        assert_eq!(policy.check(ip("64:ff9b::a01:203")), Ok(()));
        assert!(policy.check(ip("64:ff9b::b01:203")).is_err());
        assert!(policy.check(ip("2001:db8::1")).is_err());
    }

    #[test]
    fn unspecified_addresses_are_refused_whatever_the_lists() {
        let open = AddressPolicy::new(vec![net("0.0.0.0/0"), net("::/0")], Vec::new());
        for (written, address) in [
            ("http://0.0.0.0:8080/", "0.0.0.0"),
            ("http://0:8080/", "0.0.0.0"),
            ("http://0.0.0.7/", "0.0.0.7"),
            ("http://[::]:8080/", "::"),
            ("http://[::ffff:0.0.0.0]/", "::ffff:0.0.0.0"),
            ("http://[64:ff9b::]/", "64:ff9b::"),
        ] {
            for policy in [&open, &AddressPolicy::default()] {
                assert_eq!(
                    policy.check_url(&url(written)),
                    Err(AddressRefused::Unspecified(ip(address))),
                    "{written}"
                );
            }
        }
    }

    #[test]
    fn names_are_left_to_the_resolver() {
        let policy = AddressPolicy::new(Vec::new(), vec![net("127.0.0.0/8")]);
        assert_eq!(policy.check_url(&url("http://localhost:9/")), Ok(()));
        assert!(policy.check_url(&url("http://127.0.0.1:9/")).is_err());
    }

    #[test]
    fn deny_wins_over_allow() {
        let policy = AddressPolicy::new(vec![net("10.0.0.0/8")], vec![net("10.9.0.0/16")]);
        assert_eq!(policy.check(ip("10.1.0.1")), Ok(()));
        assert!(policy.check(ip("10.9.0.1")).is_err());
        assert!(policy.check(ip("::ffff:10.9.0.1")).is_err());
        assert!(policy.check(ip("192.0.2.1")).is_err());
    }
}
