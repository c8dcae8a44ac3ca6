//! Outbound safety for requests to addresses a client chose (`conditionEndpoint`): no request
//! reaches loopback, private, link-local (cloud metadata), carrier-grade NAT, multicast or other
//! non-public addresses unless configuration allow-lists them.
//!
//! Three places are guarded, so neither an IP literal, a DNS name nor a redirect gets around it:
//! the URL's host before the request, every address a name resolves to (a resolver that drops the
//! refused ones, so a name that resolves to both a public and a private address only ever
//! connects to the public one), and every redirect target.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Which non-public destinations are allowed anyway.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Host names allowed whatever they resolve to (lowercase, no trailing dot).
    names: Vec<String>,
    /// Networks allowed (an address is a /32 or /128).
    nets: Vec<IpNet>,
}

/// Why a destination was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl OutboundPolicy {
    /// From configuration entries: each a host name (`localhost`), an address (`127.0.0.1`,
    /// `::1`) or a network (`10.20.0.0/16`).
    pub fn new(entries: &[String]) -> Self {
        let mut policy = Self::default();
        for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let bare = e.trim_start_matches('[').trim_end_matches(']');
            if let Ok(net) = bare.parse::<IpNet>() {
                policy.nets.push(net);
            } else if let Ok(ip) = bare.parse::<IpAddr>() {
                policy.nets.push(IpNet::from(ip));
            } else {
                policy.names.push(normalise(bare));
            }
        }
        policy
    }

    /// Whether a host (a name or an address) is allow-listed by this configuration itself, not
    /// merely public.
    pub fn lists(&self, host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.nets.iter().any(|n| n.contains(&ip)),
            Err(_) => self.name_allowed(bare),
        }
    }

    /// Whether a host name is allow-listed as a name.
    pub fn name_allowed(&self, host: &str) -> bool {
        let host = normalise(host);
        self.names.contains(&host)
    }

    /// Whether a connection to `ip` is allowed: a public address, or one in an allowed network.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Checks a URL's scheme and host before any connection: an IP literal must be allowed; a
    /// name is checked again when it resolves.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused(format!("{url}: only http and https are allowed")));
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip), &ip.to_string()),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip), &ip.to_string()),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(Refused(format!("{url}: no host"))),
        }
    }

    fn check_ip(&self, ip: IpAddr, host: &str) -> Result<(), Refused> {
        if self.ip_allowed(ip) || self.name_allowed(host) {
            Ok(())
        } else {
            Err(Refused(format!("{ip} is not a public address and is not allow-listed")))
        }
    }

    /// A resolver for reqwest that only hands out allowed addresses.
    pub fn resolver(self: &Arc<Self>) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver { policy: self.clone() })
    }

    /// A reqwest client builder for destinations a client chose: this policy's resolver, no
    /// proxy (it would resolve names itself and get around the resolver), and `timeout` for the
    /// connection and for the whole request. The caller adds its redirect policy.
    pub fn client_builder(
        self: &Arc<Self>,
        timeout: std::time::Duration,
    ) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .dns_resolver(self.resolver())
    }
}

impl OutboundPolicy {
    /// A redirect policy that follows at most `max` redirects, each to a destination this
    /// policy allows (the target's addresses are checked again by the resolver).
    pub fn checked_redirects(self: &Arc<Self>, max: usize) -> reqwest::redirect::Policy {
        let policy = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` holds every URL asked so far, the first included: it is one longer
            // than the redirects already followed.
            if attempt.previous().len() > max {
                return attempt.error(Refused(format!("more than {max} redirects")));
            }
            match policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(Refused(format!("redirect to {refused}"))),
            }
        })
    }
}

/// The policy's refusal inside a reqwest error (from the resolver or a redirect policy).
pub fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        source = s.source();
    }
    None
}

/// An error and its causes on one line ("error sending request: … : connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn normalise(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether an address is globally routable: not loopback, private, link-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation, benchmarking or reserved space. IPv4-mapped
/// and NAT64 IPv6 addresses are judged by the IPv4 address inside.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg = v6.segments();
            // 64:ff9b::/96 (NAT64) embeds an IPv4 address.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let [a, b] = seg[6].to_be_bytes();
                let [c, d] = seg[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local (incl. fd00:ec2::254)
                || (seg[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
                || (seg[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x2001 && seg[1] < 0x0200) // 2001::/23 IETF protocol assignments (Teredo, ORCHID…)
                || seg[0] == 0x0100 && seg[1..4] == [0, 0, 0] // 100::/64 discard
                || seg[0] == 0 && v6 != Ipv6Addr::UNSPECIFIED) // ::/8 incl. IPv4-compatible
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, incl. 169.254.169.254 metadata
        || (a == 100 && (64..128).contains(&b)) // 100.64/10 shared (CGNAT)
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24 IETF
        || ip.is_documentation()
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || ip.is_multicast()
        || a >= 240) // reserved and broadcast
}

/// A DNS resolver that drops refused addresses; a name left with none fails to resolve.
pub struct GuardedResolver {
    policy: Arc<OutboundPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.name_allowed(&host) {
                return Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs);
            }
            let allowed: Vec<SocketAddr> =
                addrs.iter().copied().filter(|a| policy.ip_allowed(a.ip())).collect();
            if allowed.is_empty() {
                let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                return Err(Box::new(Refused(format!(
                    "{host} resolves to {} and no public address: refused (allow-list it to permit)",
                    shown.join(", ")
                ))) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_ranges_are_refused_and_public_ones_allowed() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            assert!(!is_public(refused.parse().unwrap()), "{refused} should be refused");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "193.69.1.1",
            "2a00:1450:4010::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public} should be allowed");
        }
    }

    #[test]
    fn allow_list_entries_are_names_addresses_or_networks() {
        let p = OutboundPolicy::new(&[
            "LocalHost.".into(),
            "127.0.0.1".into(),
            "10.20.0.0/16".into(),
            "[::1]".into(),
        ]);
        assert!(p.name_allowed("localhost"));
        assert!(p.ip_allowed("127.0.0.1".parse().unwrap()));
        assert!(!p.ip_allowed("127.0.0.2".parse().unwrap()));
        assert!(p.ip_allowed("10.20.3.4".parse().unwrap()));
        assert!(!p.ip_allowed("10.21.0.1".parse().unwrap()));
        assert!(p.ip_allowed("::1".parse().unwrap()));
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(p.check_url(&url("http://127.0.0.1:8080/x")).is_ok());
        assert!(p.check_url(&url("http://169.254.169.254/latest/meta-data")).is_err());
        assert!(p.check_url(&url("http://[::1]/x")).is_ok());
        assert!(p.check_url(&url("http://[::ffff:a9fe:a9fe]/x")).is_err());
        assert!(p.check_url(&url("file:///etc/passwd")).is_err());
        assert!(p.check_url(&url("http://example.com/x")).is_ok());
    }
}
