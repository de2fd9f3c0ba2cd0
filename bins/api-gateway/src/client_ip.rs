//! The client's address for per-IP limits. Behind a reverse proxy every
//! request comes from the proxy, so the TCP peer alone would put all clients
//! in one budget. With `GATEWAY_TRUSTED_PROXIES` (addresses or CIDR ranges),
//! a request whose peer is a trusted proxy is attributed to the right-most
//! `X-Forwarded-For` entry that is not itself a trusted proxy: the address
//! the outermost trusted proxy saw. Entries further left are written by the
//! client and never trusted.

use std::net::IpAddr;

use confab_web::ConfigError;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR ranges
    /// (`127.0.0.1, 10.0.0.0/8, ::1`); empty means none.
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net =
                match item.parse::<IpNet>() {
                    Ok(net) => net,
                    Err(_) => item.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                        ConfigError::Invalid {
                            name: "GATEWAY_TRUSTED_PROXIES",
                            reason: format!("`{item}` is not an IP address or CIDR range"),
                        }
                    })?,
                };
            nets.push(net);
        }
        Ok(Self(nets))
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client address of a request from `peer` carrying the
    /// `X-Forwarded-For` values `forwarded` (in header order), as text;
    /// `"unknown"` without a peer.
    pub fn client_ip<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded: impl Iterator<Item = &'a str>,
    ) -> String {
        let Some(peer) = peer else {
            return "unknown".into();
        };
        if !self.contains(&peer) {
            return peer.to_string();
        }
        let hops: Vec<&str> = forwarded
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A malformed entry ends the chain: nothing left of it is believed.
            let Ok(ip) = hop.parse::<IpAddr>() else { break };
            client = ip;
            if !self.contains(&ip) {
                break;
            }
        }
        client.to_string()
    }

    /// The per-IP rate-limit bucket of a request: [`Self::client_ip`] for
    /// IPv4 (and IPv4-mapped IPv6) clients, the client's /64 for IPv6 ones
    /// (one host usually holds a whole /64, so single addresses would give
    /// it unlimited buckets).
    pub fn client_bucket<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded: impl Iterator<Item = &'a str>,
    ) -> String {
        bucket(&self.client_ip(peer, forwarded))
    }
}

/// The bucket of a client address (text from [`TrustedProxies::client_ip`]).
pub fn bucket(client: &str) -> String {
    match client.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        _ => client.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("203.0.113.9"), ["1.2.3.4"].into_iter()),
            "203.0.113.9"
        );
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            t.client_ip(ip("203.0.113.9"), ["1.2.3.4"].into_iter()),
            "203.0.113.9"
        );
        assert_eq!(t.client_ip(None, std::iter::empty()), "unknown");
    }

    #[test]
    fn trusted_chain_yields_the_rightmost_untrusted_hop() {
        let t = TrustedProxies::parse(" 127.0.0.1 , 10.0.0.0/8,::1").unwrap();
        // client spoofs 6.6.6.6; nginx (10.0.0.2) appended the real 198.51.100.7.
        assert_eq!(
            t.client_ip(
                ip("127.0.0.1"),
                ["6.6.6.6, 198.51.100.7", "10.0.0.2"].into_iter()
            ),
            "198.51.100.7"
        );
        // No header: the proxy itself.
        assert_eq!(t.client_ip(ip("::1"), std::iter::empty()), "::1");
        // Garbage stops the walk at the last good trusted hop.
        assert_eq!(
            t.client_ip(ip("127.0.0.1"), ["nonsense, 10.0.0.3"].into_iter()),
            "10.0.0.3"
        );
        // Only trusted hops: the left-most of them.
        assert_eq!(
            t.client_ip(ip("127.0.0.1"), ["10.1.1.1, 10.0.0.3"].into_iter()),
            "10.1.1.1"
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(bucket("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(bucket("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::/64");
        assert_ne!(bucket("2001:db8:1:3::1"), bucket("2001:db8:1:2::1"));
        assert_eq!(bucket("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(bucket("203.0.113.9"), "203.0.113.9");
        assert_eq!(bucket("unknown"), "unknown");
    }

    #[test]
    fn bad_entries_are_config_errors() {
        let e = TrustedProxies::parse("10.0.0.0/8, proxy.local").unwrap_err();
        assert!(e.to_string().contains("proxy.local"), "{e}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
    }
}
