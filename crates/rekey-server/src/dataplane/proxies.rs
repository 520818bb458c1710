//! Owns which address a data-plane call comes from, for throttling and logging alike: the peer's,
//! unless the peer is a trusted reverse proxy (`--trusted-proxies`); then the right-most address in
//! `X-Forwarded-For` that is not itself a trusted proxy. Addresses left of it were written by the
//! client and are never believed, so a client cannot pick the address it is throttled as.

use std::net::{IpAddr, SocketAddr};

/// An address block in CIDR notation: `10.0.0.0/8`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        /// Whether the top `prefix` of `bits` bits agree (a shift by the full width would overflow).
        fn same_prefix(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
            prefix == 0 || (a ^ b) >> u32::from(bits - prefix) == 0
        }
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(net.into(), ip.into(), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The networks whose `X-Forwarded-For` is believed; none by default.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    pub fn new(networks: Vec<Network>) -> Self {
        Self(networks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client's address for a call from `peer` whose `X-Forwarded-For` lines `forwarded_for`
    /// gives (in the order received; a line that is not visible ASCII reads as empty). The headers
    /// are looked at only when the peer is a trusted proxy.
    pub fn client<'a, Lines: Iterator<Item = &'a str>>(
        &self,
        peer: IpAddr,
        forwarded_for: impl FnOnce() -> Lines,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        // Several lines form one list; the walk goes right to left over all of them. Only with
        // trusted proxies configured and a call from one of them is anything collected.
        let lines: Vec<&str> = forwarded_for().collect();
        let mut client = peer;
        for hop in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
            // What a trusted proxy wrote but is no address (`unknown`, empty) ends the walk at the
            // nearest address known.
            let Some(ip) = parse_hop(hop.trim()) else {
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`) or in
/// brackets.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })?;
    Some(ip.to_canonical())
}

/// One `--trusted-proxies` entry: a network in CIDR notation (`10.0.0.0/8`, `fd00::/8`) or a single
/// address.
pub fn parse_network(text: &str) -> Result<Network, String> {
    let text = text.trim();
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address = address.parse::<IpAddr>().map_err(|_| {
        format!(
            "a trusted proxy must be an address or a CIDR network like 10.0.0.0/8; got {text:?}"
        )
    })?;
    let address = address.to_canonical();
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => Some(bits),
        // Digits only: `u8::from_str` would also take a leading `+`.
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().ok().filter(|&p| p <= bits)
        }
        Some(_) => None,
    };
    let prefix = prefix.ok_or_else(|| {
        format!("a trusted proxy's prefix length must be a number from 0 to {bits}; got {text:?}")
    })?;
    Ok(Network { address, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|t| parse_network(t).unwrap()).collect())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("127.0.0.1"), || ["10.9.9.9"].into_iter()),
            ip("127.0.0.1")
        );
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client(ip("192.0.2.1"), || ["10.9.9.9"].into_iter()),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        // The client wrote 6.6.6.6 itself; the proxies appended 203.0.113.7 and 10.1.1.1.
        assert_eq!(
            trusted.client(peer, || ["6.6.6.6, 203.0.113.7", "10.1.1.1"].into_iter()),
            ip("203.0.113.7")
        );
        assert_eq!(
            trusted.client(peer, || ["10.2.2.2, 10.1.1.1"].into_iter()),
            ip("10.2.2.2"),
            "every hop trusted: the furthest"
        );
        assert_eq!(
            trusted.client(peer, || ["6.6.6.6, unknown"].into_iter()),
            peer,
            "no address: the nearest one known"
        );
        assert_eq!(trusted.client(peer, std::iter::empty), peer);
        assert_eq!(
            trusted.client(peer, || ["[2001:db8::1]:443"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(
            trusted.client(ip("::ffff:127.0.0.1"), || ["198.51.100.2:80"].into_iter()),
            ip("198.51.100.2"),
            "a v4-mapped peer is its v4 address"
        );
    }

    #[test]
    fn networks_parse_as_cidrs_or_addresses() {
        let eight = parse_network(" 10.1.2.3/8").unwrap();
        assert!(eight.contains(ip("10.255.0.1")) && !eight.contains(ip("11.0.0.1")));
        assert!(
            !eight.contains(ip("::ffff:a00:1")),
            "families are compared as given"
        );
        let one = parse_network("::1").unwrap();
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let v6 = parse_network("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        let all = parse_network("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        let exact = parse_network("192.0.2.7/32").unwrap();
        assert!(exact.contains(ip("192.0.2.7")) && !exact.contains(ip("192.0.2.6")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "host",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "1.2.3/8",
        ] {
            assert!(parse_network(bad).is_err(), "{bad}");
        }
    }
}
