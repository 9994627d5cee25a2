//! The one rule for the URLs we send to (Slack, PagerDuty, subscriptions): `https://`
//! anywhere, plain `http://` only to a loopback address, for a stand-in on this machine.

/// `url` (trimmed) if it may be called: `https://` with a host, or `http://` to a
/// loopback address (127.0.0.0/8 or ::1). Anything else (http:// to another host, even
/// `localhost`, which a resolver may send elsewhere; another scheme; not a URL) can never
/// be called.
pub fn loopback_or_https(url: &str) -> Option<url::Url> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Some(parsed),
        "http" if loopback => Some(parsed),
        _ => None,
    }
}
