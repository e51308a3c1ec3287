//! Network allow-lists: CIDR blocks, IPv4 and IPv6, and whether a peer address is inside one.
//!
//! An IPv4 peer that reaches an IPv6 socket arrives as `::ffff:a.b.c.d`; it is compared as the
//! IPv4 address it is, so `10.0.0.0/8` admits it whatever the listening socket's family.

use std::net::IpAddr;

/// One CIDR block with its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (one host). A block with host bits set
    /// (`10.0.0.1/8`) is refused rather than silently widened or narrowed: it is almost always
    /// a typo, and guessing which way would change who may send.
    pub fn parse(text: &str) -> Result<Network, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let base: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("{text:?} has a prefix length outside 0 to {max}")),
            },
        };
        let network = Network { base, prefix };
        if network.masked(base) != base {
            return Err(format!(
                "{text:?} has host bits set; the block is {}/{prefix}",
                network.masked(base)
            ));
        }
        Ok(network)
    }

    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        peer.is_ipv4() == self.base.is_ipv4() && self.masked(peer) == self.base
    }

    fn masked(&self, address: IpAddr) -> IpAddr {
        match address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn v4_blocks_hosts_and_mapped_peers() {
        let block = Network::parse("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.255.7")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.2.3")), "v4-mapped peer");
        assert!(!block.contains(ip("2001:db8::1")));
        let host = Network::parse("192.0.2.7").unwrap();
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("203.0.113.9"))
        );
    }

    #[test]
    fn v6_blocks() {
        let block = Network::parse("2001:db8::/32").unwrap();
        assert!(block.contains(ip("2001:db8:ffff::1")));
        assert!(!block.contains(ip("2001:db9::1")));
        assert!(!block.contains(ip("10.0.0.1")));
        assert!(Network::parse("::/0").unwrap().contains(ip("::1")));
    }

    #[test]
    fn refuses_malformed_blocks() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.1/8",
            "::1/129",
            "x/8",
        ] {
            assert!(Network::parse(bad).is_err(), "{bad:?} accepted");
        }
        let error = Network::parse("10.0.0.1/8").unwrap_err();
        assert!(error.contains("10.0.0.0/8"), "{error}");
    }
}
