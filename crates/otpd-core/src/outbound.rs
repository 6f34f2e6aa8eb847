//! Where otpd may send a request on a tenant's behalf (status callbacks, service webhooks):
//! only to globally routable addresses, unless the operator allows a private range, so a
//! tenant cannot make otpd post into the network it runs in (server-side request forgery).
//! This module decides; resolving names and connecting live in the delivery adapter.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an outbound URL or address is refused. Its text is the coarse outcome a tenant sees
/// in a delivery log: never the target's own error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not an absolute `http(s)` URL with a host.
    #[error("refused: not an absolute http(s) URL")]
    NotHttpUrl,
    /// `http://` where only `https://` is allowed.
    #[error("refused: https required")]
    HttpsRequired,
    /// The host is, or resolves only to, an address that is not globally routable.
    #[error("refused: private address")]
    PrivateAddress,
}

/// The operator's outbound rules (`[outbound]` in the configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Whether plain `http://` targets are allowed (dev mode allows them by default).
    pub allow_http: bool,
    /// Private ranges the operator allows (internal receivers).
    pub allowed_networks: Vec<IpNet>,
    /// Host names the operator allows whatever they resolve to (lower case).
    pub allowed_hosts: Vec<String>,
}

impl OutboundPolicy {
    /// A policy from the configuration's list: each entry an address, a CIDR range or a host
    /// name. Errors name the entry that is none of these.
    pub fn new(allow_http: bool, allowed: &[String]) -> Result<OutboundPolicy, String> {
        let mut policy = OutboundPolicy {
            allow_http,
            ..OutboundPolicy::default()
        };
        for entry in allowed {
            let entry = entry.trim();
            if let Ok(net) = entry.parse::<IpNet>() {
                policy.allowed_networks.push(net.trunc());
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                policy.allowed_networks.push(IpNet::from(ip));
            } else if is_host_name(entry) {
                policy.allowed_hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "'{entry}' is neither an IP address, a CIDR range nor a host name"
                ));
            }
        }
        Ok(policy)
    }

    /// Checks a target URL without resolving it: scheme, and the host when it is an address
    /// (every form the URL standard reads as one: `127.1`, `2130706433`, `0x7f000001`, …).
    pub fn check_url(&self, text: &str) -> Result<url::Url, Refusal> {
        let url = url::Url::parse(text.trim()).map_err(|_| Refusal::NotHttpUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(Refusal::HttpsRequired),
            _ => return Err(Refusal::NotHttpUrl),
        }
        match url.host() {
            None => Err(Refusal::NotHttpUrl),
            Some(url::Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip)).map(|()| url),
            Some(url::Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip)).map(|()| url),
            Some(url::Host::Domain(_)) => Ok(url),
        }
    }

    /// Whether a connection to `ip` is allowed: a globally routable address, or one in a
    /// range the operator allowed.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        if is_global(ip) || self.allowed_networks.iter().any(|net| net.contains(&ip)) {
            Ok(())
        } else {
            Err(Refusal::PrivateAddress)
        }
    }

    /// Whether the operator allowed `host` by name, whatever it resolves to.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.allowed_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }
}

fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`)
/// IPv6 address, which reaches that IPv4 host; any other address unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Whether `ip` is globally routable: not loopback, private, shared, link-local, multicast,
/// documentation, benchmarking, reserved or any other special-purpose range (IANA registries).
pub fn is_global(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    const SPECIAL: &[(u32, u8)] = &[
        (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
        (0x0a00_0000, 8),  // 10.0.0.0/8 private
        (0x6440_0000, 10), // 100.64.0.0/10 shared (carrier-grade NAT)
        (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
        (0xa9fe_0000, 16), // 169.254.0.0/16 link-local, cloud metadata
        (0xac10_0000, 12), // 172.16.0.0/12 private
        (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
        (0xc000_0200, 24), // 192.0.2.0/24 documentation
        (0xc058_6300, 24), // 192.88.99.0/24 6to4 relay
        (0xc0a8_0000, 16), // 192.168.0.0/16 private
        (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
        (0xc633_6400, 24), // 198.51.100.0/24 documentation
        (0xcb00_7100, 24), // 203.0.113.0/24 documentation
        (0xe000_0000, 4),  // 224.0.0.0/4 multicast
        (0xf000_0000, 4),  // 240.0.0.0/4 reserved, and the broadcast address
    ];
    let bits = u32::from(ip);
    !SPECIAL
        .iter()
        .any(|&(net, len)| bits >> (32 - len) == net >> (32 - len))
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    const SPECIAL: &[(u128, u8)] = &[
        (0x0064_ff9b_0001 << 80, 48), // 64:ff9b:1::/48 local-use NAT64
        (0x0100 << 112, 64),          // 100::/64 discard
        (0x2001 << 112, 23),          // 2001::/23 IETF protocol assignments (Teredo, …)
        (0x2001_0db8 << 96, 32),      // 2001:db8::/32 documentation
        (0x2002 << 112, 16),          // 2002::/16 6to4 (reaches an embedded IPv4 host)
        (0x3fff << 112, 20),          // 3fff::/20 documentation
    ];
    let bits = u128::from(ip);
    // Only 2000::/3 is global unicast; loopback, unspecified, unique-local, link-local and
    // multicast all fall outside it.
    let global_unicast = bits >> 125 == 0b001;
    global_unicast
        && !SPECIAL
            .iter()
            .any(|&(net, len)| bits >> (128 - len) == net >> (128 - len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> OutboundPolicy {
        OutboundPolicy::default()
    }

    fn refused(policy: &OutboundPolicy, url: &str) -> Option<Refusal> {
        policy.check_url(url).err()
    }

    #[test]
    fn every_special_ipv4_range_is_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_global(ip), "{ip} must not count as global");
            assert_eq!(strict().check_address(ip), Err(Refusal::PrivateAddress));
        }
    }

    #[test]
    fn public_ipv4_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_global(ip), "{ip} is global");
        }
    }

    #[test]
    fn every_special_ipv6_range_is_refused() {
        for ip in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_global(ip), "{ip} must not count as global");
        }
    }

    #[test]
    fn public_ipv6_and_their_mapped_forms_are_allowed() {
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4007:80e::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_global(ip), "{ip} is global");
        }
    }

    #[test]
    fn every_spelling_of_loopback_in_a_url_is_refused() {
        let policy = OutboundPolicy {
            allow_http: true,
            ..OutboundPolicy::default()
        };
        for url in [
            "http://127.0.0.1/hook",
            "http://127.1/hook",
            "http://2130706433/hook",
            "http://0x7f000001/hook",
            "http://0177.0.0.1/hook",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[::ffff:7f00:1]/hook",
            "http://[64:ff9b::127.0.0.1]/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1:8080/",
            "http://[fd00::1]/",
            "https://0.0.0.0/",
        ] {
            assert_eq!(
                refused(&policy, url),
                Some(Refusal::PrivateAddress),
                "{url}"
            );
        }
        assert!(policy.check_url("http://8.8.8.8/hook").is_ok());
        assert!(policy.check_url("https://example.com/hook").is_ok());
    }

    #[test]
    fn http_needs_the_operators_consent_and_other_schemes_never_pass() {
        assert_eq!(
            refused(&strict(), "http://example.com/hook"),
            Some(Refusal::HttpsRequired)
        );
        assert!(strict().check_url("https://example.com/hook").is_ok());
        for url in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "not a url",
            "",
        ] {
            assert_eq!(refused(&strict(), url), Some(Refusal::NotHttpUrl), "{url}");
        }
    }

    #[test]
    fn operators_allow_private_ranges_and_hosts() {
        let policy = OutboundPolicy::new(
            true,
            &[
                "10.1.2.0/24".into(),
                "127.0.0.1".into(),
                "hooks.internal".into(),
            ],
        )
        .unwrap();
        assert!(policy.check_url("http://10.1.2.7/hook").is_ok());
        assert!(policy.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(policy.check_url("http://[::ffff:127.0.0.1]/hook").is_ok());
        assert_eq!(
            refused(&policy, "http://10.1.3.7/hook"),
            Some(Refusal::PrivateAddress)
        );
        assert_eq!(
            refused(&policy, "http://127.0.0.2/hook"),
            Some(Refusal::PrivateAddress)
        );
        assert!(policy.host_allowed("hooks.internal"));
        assert!(policy.host_allowed("HOOKS.internal."));
        assert!(!policy.host_allowed("evil.hooks.internal"));
        assert!(OutboundPolicy::new(false, &["not an/entry".into()]).is_err());
    }
}
