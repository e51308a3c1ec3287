//! Network allow-lists: CIDR blocks, IPv4 and IPv6, and whether a peer address is inside one.
//!
//! An IPv4 peer that reaches an IPv6 socket arrives as `::ffff:a.b.c.d`; it is compared as the
//! IPv4 address it is, so `10.0.0.0/8` admits it whatever the listening socket's family. A block
//! written in that mapped form (`::ffff:10.0.0.0/104`) is the IPv4 block it names.
//!
//! [`embedded_ipv4`] finds the IPv4 address in the other IPv6 forms that carry one (NAT64, 6to4,
//! compatible). It is for destinations, where a connection to such an address reaches that IPv4
//! host; [`Network::contains`] does not use it, since a peer's 6to4 or NAT64 source address
//! says nothing trustworthy about an IPv4 network it would belong to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IPv4 address an IPv6 address carries, for every form by which a connection to the IPv6
/// address reaches that IPv4 host: mapped `::ffff:0:0/96`, translated `::ffff:0:0:0/96` (RFC
/// 2765), compatible `::/96` (deprecated, RFC 4291; `::` and `::1` are IPv6's own), the NAT64
/// well-known prefix `64:ff9b::/96` (RFC 6052), and 6to4 `2002::/16` (RFC 3056, bits 16 to 48).
pub fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(address);
    let low = Ipv4Addr::from(bits as u32);
    let high_96 = bits >> 32;
    match high_96 {
        0xffff | 0xffff_0000 | 0x0064_ff9b_0000_0000_0000_0000 => Some(low),
        0 if bits > 1 => Some(low),
        _ if bits >> 112 == 0x2002 => Some(Ipv4Addr::from((bits >> 80) as u32)),
        _ => None,
    }
}

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
        let network = match base {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => Network {
                base: base.to_canonical(),
                prefix: prefix - 96,
            },
            _ => Network { base, prefix },
        };
        if network.masked(network.base) != network.base {
            return Err(format!(
                "{text:?} has host bits set; the block is {}/{prefix}",
                Network { base, prefix }.masked(base)
            ));
        }
        Ok(network)
    }

    /// Whether `peer` is inside the block; an IPv4-mapped IPv6 peer is compared as its IPv4
    /// address, and the other IPv4-carrying forms are not (see the module's docs).
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
    fn a_mapped_block_is_the_ipv4_block_it_names() {
        let block = Network::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(block, Network::parse("10.0.0.0/8").unwrap());
        assert!(block.contains(ip("10.9.9.9")));
        assert!(block.contains(ip("::ffff:10.9.9.9")));
        assert!(Network::parse("::ffff:10.0.0.1/104").is_err());
    }

    #[test]
    fn finds_the_ipv4_address_every_embedding_carries() {
        let v6 = |text: &str| text.parse::<Ipv6Addr>().unwrap();
        let metadata = Some(Ipv4Addr::new(169, 254, 169, 254));
        for form in [
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe",
            "::ffff:0:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::169.254.169.254",
            "2002:a9fe:a9fe::",
            "2002:a9fe:a9fe:1:2:3:4:5",
        ] {
            assert_eq!(embedded_ipv4(v6(form)), metadata, "{form}");
        }
        assert_eq!(
            embedded_ipv4(v6("::7f00:1")),
            Some(Ipv4Addr::new(127, 0, 0, 1))
        );
        for plain in [
            "::",
            "::1",
            "fe80::1",
            "2001:db8::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
        ] {
            assert_eq!(embedded_ipv4(v6(plain)), None, "{plain}");
        }
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
