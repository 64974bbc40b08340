//! Broker addresses and bootstrap lists: `kafka://host:port,host:port` or bare
//! `host:port,host:port`, with IPv6 hosts in brackets (`[::1]:9092`).
//!
//! Every entry needs an explicit port, as in Kafka's `bootstrap.servers`. Reading the
//! `MEPHISTO_BROKER` environment variable is the callers' business, not this module's.

use std::fmt;
use std::str::FromStr;

/// The only URL scheme accepted in front of a bootstrap list.
pub const SCHEME: &str = "kafka://";

/// A broker's `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerAddr {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddr {
    /// An address from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for BrokerAddr {
    type Err = BrokerUrlError;

    /// Parses one `host:port` (no scheme, no list).
    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        parse_entry(entry.trim())
    }
}

/// Why a broker address or bootstrap list is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerUrlError {
    /// The string holds no broker at all.
    #[error("empty broker list")]
    Empty,
    /// A `scheme://` other than `kafka://`.
    #[error("unsupported scheme {scheme:?} in {url:?} (only kafka:// is supported)")]
    UnsupportedScheme {
        /// The scheme found, without `://`.
        scheme: String,
        /// The whole input.
        url: String,
    },
    /// An empty entry between commas.
    #[error("empty entry in broker list {0:?}")]
    EmptyEntry(String),
    /// An entry without `:port`.
    #[error("broker address {0:?} has no port (expected host:port)")]
    MissingPort(String),
    /// The port is not a number from 1 to 65535.
    #[error("broker address {entry:?} has an invalid port {port:?}")]
    InvalidPort {
        /// The entry.
        entry: String,
        /// The text after the last colon.
        port: String,
    },
    /// The host part is empty or holds characters no host name has (spaces, `/`, `@`, `?`, ...).
    #[error("broker address {0:?} has an invalid host")]
    InvalidHost(String),
}

/// Parses a bootstrap list: `kafka://host:port,host:port` or `host:port,host:port`.
///
/// Whitespace around entries is ignored; a trailing `/` after the last entry is allowed.
pub fn parse_bootstrap(input: &str) -> Result<Vec<BrokerAddr>, BrokerUrlError> {
    let trimmed = input.trim();
    let list = match trimmed.find("://") {
        Some(at) => {
            let scheme = &trimmed[..at];
            if !scheme.eq_ignore_ascii_case("kafka") {
                return Err(BrokerUrlError::UnsupportedScheme {
                    scheme: scheme.to_owned(),
                    url: input.to_owned(),
                });
            }
            &trimmed[at + 3..]
        }
        None => trimmed,
    };
    let list = list.strip_suffix('/').unwrap_or(list);
    if list.trim().is_empty() {
        return Err(BrokerUrlError::Empty);
    }
    list.split(',')
        .map(|entry| {
            let entry = entry.trim();
            if entry.is_empty() {
                Err(BrokerUrlError::EmptyEntry(input.to_owned()))
            } else {
                parse_entry(entry)
            }
        })
        .collect()
}

fn parse_entry(entry: &str) -> Result<BrokerAddr, BrokerUrlError> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        // [v6]:port
        let Some((host, after)) = rest.split_once(']') else {
            return Err(BrokerUrlError::InvalidHost(entry.to_owned()));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(BrokerUrlError::MissingPort(entry.to_owned()));
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(BrokerUrlError::InvalidHost(entry.to_owned()));
        }
        (host, port)
    } else {
        let Some((host, port)) = entry.rsplit_once(':') else {
            return Err(BrokerUrlError::MissingPort(entry.to_owned()));
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if host.is_empty() || !host.chars().all(valid) {
            return Err(BrokerUrlError::InvalidHost(entry.to_owned()));
        }
        (host, port)
    };
    let port_number = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && port.chars().all(|c| c.is_ascii_digit()));
    let Some(port_number) = port_number else {
        return Err(BrokerUrlError::InvalidPort {
            entry: entry.to_owned(),
            port: port.to_owned(),
        });
    };
    Ok(BrokerAddr::new(host, port_number))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[(&str, u16)]) -> Vec<BrokerAddr> {
        list.iter().map(|&(h, p)| BrokerAddr::new(h, p)).collect()
    }

    #[test]
    fn accepts_urls_and_bare_lists() {
        assert_eq!(
            parse_bootstrap("kafka://127.0.0.1:9092").unwrap(),
            addrs(&[("127.0.0.1", 9092)])
        );
        assert_eq!(
            parse_bootstrap("KAFKA://a:1, b.example:2 ,c-d_e:65535/").unwrap(),
            addrs(&[("a", 1), ("b.example", 2), ("c-d_e", 65535)])
        );
        assert_eq!(
            parse_bootstrap(" localhost:9092,localhost:9093 ").unwrap(),
            addrs(&[("localhost", 9092), ("localhost", 9093)])
        );
        assert_eq!(
            parse_bootstrap("kafka://[::1]:9092,[fe80::1]:1").unwrap(),
            addrs(&[("::1", 9092), ("fe80::1", 1)])
        );
    }

    #[test]
    fn display_round_trips() {
        for s in ["127.0.0.1:9092", "[::1]:9092", "broker-1.example:19092"] {
            let addr: BrokerAddr = s.parse().unwrap();
            assert_eq!(addr.to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_input_with_typed_errors() {
        use BrokerUrlError as E;
        let err = |s: &str| parse_bootstrap(s).unwrap_err();
        assert_eq!(err(""), E::Empty);
        assert_eq!(err("kafka://"), E::Empty);
        assert!(
            matches!(err("http://a:1"), E::UnsupportedScheme { scheme, .. } if scheme == "http")
        );
        assert!(matches!(
            err("kafka+ssl://a:1"),
            E::UnsupportedScheme { .. }
        ));
        assert!(matches!(err("a:1,,b:2"), E::EmptyEntry(_)));
        assert!(matches!(err("a:1,"), E::EmptyEntry(_)));
        assert_eq!(err("localhost"), E::MissingPort("localhost".into()));
        assert_eq!(err("[::1]"), E::MissingPort("[::1]".into()));
        assert!(matches!(err("a:0"), E::InvalidPort { .. }));
        assert!(matches!(err("a:65536"), E::InvalidPort { .. }));
        assert!(matches!(err("a:+80"), E::InvalidPort { .. }));
        assert!(matches!(err("a:x"), E::InvalidPort { .. }));
        assert!(matches!(err("a:"), E::InvalidPort { .. }));
        assert!(matches!(err(":9092"), E::InvalidHost(_)));
        assert!(matches!(err("::1:9092"), E::InvalidHost(_)));
        assert!(matches!(err("kafka://a:1/path"), E::InvalidPort { .. }));
        assert!(matches!(err("user@a:1"), E::InvalidHost(_)));
        assert!(matches!(err("a b:1"), E::InvalidHost(_)));
        assert!(matches!(err("[zz]:1"), E::InvalidHost(_)));
        assert!(matches!(err("[::1:1"), E::InvalidHost(_)));
    }
}
