//! Where clients reach each upstream broker through the gateway.
//!
//! Brokers are mapped one to one, never collapsed into one node: a client that learns from
//! Metadata that node 2 leads a partition must reach the upstream node 2 through the gateway,
//! and the gateway must know, from the connection alone, which node that is. Two schemes:
//!
//! - **Port per node** ([`PortRange`]): node `n` listens on `first_port + (n - node_id_base)`.
//!   The rule is arithmetic, not an allocation: the same node always gets the same port, across
//!   restarts and on every gateway replica, with no state to persist or share. A node id outside
//!   the range has no port ([`Unaddressable`]). The bootstrap port, outside the range, reaches
//!   "any node".
//! - **SNI** ([`SniDomain`]): one TLS port; the client's server name says the node:
//!   `broker-<node id>.<domain>`, or `bootstrap.<domain>` for any node. One wildcard
//!   certificate (`*.<domain>`) covers every name. Names are compared without regard to ASCII
//!   case, and one trailing dot is ignored, as DNS does.
//!
//! Negative node ids (Kafka's "no node") have no address in either scheme.

use std::fmt;

/// What a client connection reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// The bootstrap address: any upstream node may serve it.
    Bootstrap,
    /// One upstream node, by id.
    Node(i32),
}

/// The longest host name DNS allows.
const MAX_HOST_LEN: usize = 253;
/// The longest node id in decimal (`i32::MAX` has 10 digits).
const MAX_NODE_ID_DIGITS: usize = 10;
/// How much of a client's server name an error repeats.
const SHOWN_NAME_LEN: usize = 64;
/// The placeholder an advertised host template may carry.
const NODE_ID_PLACEHOLDER: &str = "{node_id}";
/// The first label of the SNI bootstrap name.
const BOOTSTRAP_LABEL: &str = "bootstrap";
/// The first label of an SNI broker name, before the node id.
const BROKER_PREFIX: &str = "broker-";

/// Settings of the port-per-node scheme, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPerNodeSettings {
    /// The port clients bootstrap from; reaches any node. Outside `first_port..=last_port`.
    pub bootstrap_port: u16,
    /// The first port of the node range: the port of node `node_id_base`.
    pub first_port: u16,
    /// The last port of the node range (inclusive).
    pub last_port: u16,
    /// The node id that gets `first_port`; ids below it have no port.
    pub node_id_base: i32,
    /// The host clients are told, with `{node_id}` replaced by the node id if present
    /// (`gateway.example.com`, or `kafka-{node_id}.example.com` behind per-node DNS names).
    pub advertised_host: String,
    /// The port advertised for `node_id_base`, if the ports clients see differ from the bound
    /// ones (NAT, a Kubernetes service). Default: the bound port.
    pub advertised_first_port: Option<u16>,
}

/// Settings of the SNI scheme, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniSettings {
    /// The domain under which `broker-<node id>.<domain>` and `bootstrap.<domain>` live.
    pub domain: String,
    /// The TLS port clients are told (the listener's port, or the load balancer's).
    pub advertised_port: u16,
}

/// The address a client is told for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    pub host: String,
    pub port: u16,
}

/// The map could not be built from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressMapError {
    #[error("gateway port range {first}..={last} is empty or starts at port 0")]
    EmptyPortRange { first: u16, last: u16 },
    #[error("gateway bootstrap port {port} is inside the node port range {first}..={last}")]
    BootstrapInRange { port: u16, first: u16, last: u16 },
    #[error("gateway bootstrap port must not be 0")]
    BootstrapPortZero,
    #[error("gateway node id base {base} must not be negative")]
    NegativeNodeIdBase { base: i32 },
    #[error(
        "gateway node id base {base} plus the range's {count} ports exceeds the largest node id"
    )]
    NodeIdsOverflow { base: i32, count: u32 },
    #[error("advertised first port {port} plus the range's {count} ports exceeds port 65535")]
    AdvertisedPortsOverflow { port: u16, count: u32 },
    #[error("advertised port must not be 0")]
    AdvertisedPortZero,
    #[error("advertised host `{template}`: {reason}")]
    BadHost {
        template: String,
        reason: &'static str,
    },
    #[error("gateway SNI domain `{domain}`: {reason}")]
    BadDomain {
        domain: String,
        reason: &'static str,
    },
}

/// A node id the map gives no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unaddressable {
    #[error("upstream node id {node_id} is negative and has no address")]
    Negative { node_id: i32 },
    #[error(
        "upstream node {node_id} is outside the gateway's port range {first}..={last}, which \
         addresses node ids {lowest}..={highest}"
    )]
    OutsidePortRange {
        node_id: i32,
        first: u16,
        last: u16,
        lowest: i32,
        highest: i32,
    },
}

/// A TLS server name the gateway does not route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniNameError {
    #[error("the client sent no server name; connect to `bootstrap.{domain}` or `broker-<node id>.{domain}`")]
    Missing { domain: String },
    #[error("server name `{name}` is outside the gateway's domain `{domain}`")]
    OutsideDomain { name: String, domain: String },
    #[error("server name `{name}` names no broker; expected `bootstrap.{domain}` or `broker-<node id>.{domain}`")]
    NotABroker { name: String, domain: String },
    #[error("server name `{name}`: this gateway routes by port, not by server name")]
    NotSni { name: String },
}

/// The port-per-node scheme, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange {
    bootstrap_port: u16,
    first_port: u16,
    last_port: u16,
    node_id_base: i32,
    advertised_host: HostTemplate,
    advertised_first_port: u16,
}

impl PortRange {
    pub fn new(settings: &PortPerNodeSettings) -> Result<Self, AddressMapError> {
        let (first, last) = (settings.first_port, settings.last_port);
        if first == 0 || first > last {
            return Err(AddressMapError::EmptyPortRange { first, last });
        }
        if settings.bootstrap_port == 0 {
            return Err(AddressMapError::BootstrapPortZero);
        }
        if (first..=last).contains(&settings.bootstrap_port) {
            return Err(AddressMapError::BootstrapInRange {
                port: settings.bootstrap_port,
                first,
                last,
            });
        }
        let base = settings.node_id_base;
        if base < 0 {
            return Err(AddressMapError::NegativeNodeIdBase { base });
        }
        let span = u32::from(last - first);
        if i64::from(base) + i64::from(span) > i64::from(i32::MAX) {
            return Err(AddressMapError::NodeIdsOverflow {
                base,
                count: span + 1,
            });
        }
        let advertised_first_port = settings.advertised_first_port.unwrap_or(first);
        if advertised_first_port == 0 {
            return Err(AddressMapError::AdvertisedPortZero);
        }
        if u32::from(advertised_first_port) + span > u32::from(u16::MAX) {
            return Err(AddressMapError::AdvertisedPortsOverflow {
                port: advertised_first_port,
                count: span + 1,
            });
        }
        Ok(Self {
            bootstrap_port: settings.bootstrap_port,
            first_port: first,
            last_port: last,
            node_id_base: base,
            advertised_host: HostTemplate::parse(&settings.advertised_host)?,
            advertised_first_port,
        })
    }

    /// The bootstrap port (reaches any node).
    pub fn bootstrap_port(&self) -> u16 {
        self.bootstrap_port
    }

    /// The node ids this range addresses.
    pub fn node_ids(&self) -> std::ops::RangeInclusive<i32> {
        self.node_id_base..=self.highest_node_id()
    }

    fn highest_node_id(&self) -> i32 {
        // Checked at construction: base + span fits an i32.
        self.node_id_base
            .saturating_add(i32::from(self.last_port - self.first_port))
    }

    /// How far `node_id` is from the base, if the range addresses it.
    fn offset(&self, node_id: i32) -> Result<u16, Unaddressable> {
        if node_id < 0 {
            return Err(Unaddressable::Negative { node_id });
        }
        let offset = i64::from(node_id) - i64::from(self.node_id_base);
        match u16::try_from(offset) {
            Ok(offset) if offset <= self.last_port - self.first_port => Ok(offset),
            _ => Err(Unaddressable::OutsidePortRange {
                node_id,
                first: self.first_port,
                last: self.last_port,
                lowest: self.node_id_base,
                highest: self.highest_node_id(),
            }),
        }
    }

    /// The port the gateway listens on for `node_id`.
    pub fn listen_port(&self, node_id: i32) -> Result<u16, Unaddressable> {
        // offset <= last - first, so first + offset <= last.
        Ok(self.first_port + self.offset(node_id)?)
    }

    /// What clients are told for `node_id`.
    pub fn advertised(&self, node_id: i32) -> Result<Advertised, Unaddressable> {
        let offset = self.offset(node_id)?;
        Ok(Advertised {
            host: self.advertised_host.render(node_id),
            // Checked at construction: advertised_first + span <= 65535.
            port: self.advertised_first_port.saturating_add(offset),
        })
    }

    /// What a connection to the local `port` reaches: the bootstrap port any node, a port of
    /// the range its node, any other port nothing.
    pub fn route_for_port(&self, port: u16) -> Option<Route> {
        if port == self.bootstrap_port {
            return Some(Route::Bootstrap);
        }
        if !(self.first_port..=self.last_port).contains(&port) {
            return None;
        }
        let offset = i32::from(port - self.first_port);
        Some(Route::Node(self.node_id_base.saturating_add(offset)))
    }
}

/// The SNI scheme, validated: the domain is lower case, without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniDomain {
    domain: String,
    advertised_port: u16,
}

impl SniDomain {
    pub fn new(settings: &SniSettings) -> Result<Self, AddressMapError> {
        if settings.advertised_port == 0 {
            return Err(AddressMapError::AdvertisedPortZero);
        }
        let raw = settings.domain.as_str();
        let bad = |reason| AddressMapError::BadDomain {
            domain: raw.to_string(),
            reason,
        };
        let domain = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
        if domain.is_empty() {
            return Err(bad("it is empty"));
        }
        // Room for the longest broker name in front of it.
        let longest_label = BROKER_PREFIX.len() + MAX_NODE_ID_DIGITS + 1;
        if domain.len() + longest_label > MAX_HOST_LEN {
            return Err(bad("it is too long to hold broker names under it"));
        }
        if domain.starts_with("*.") {
            return Err(bad(
                "give the domain itself; the certificate is the one that is a wildcard",
            ));
        }
        for label in domain.split('.') {
            if !is_dns_label(label) {
                return Err(bad(
                    "each label must be 1 to 63 letters, digits or inner hyphens",
                ));
            }
        }
        Ok(Self {
            domain,
            advertised_port: settings.advertised_port,
        })
    }

    /// The domain, lower case.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// `bootstrap.<domain>`.
    pub fn bootstrap_name(&self) -> String {
        format!("{BOOTSTRAP_LABEL}.{}", self.domain)
    }

    /// What clients are told for `node_id`: `broker-<node id>.<domain>` on the advertised
    /// port.
    pub fn advertised(&self, node_id: i32) -> Result<Advertised, Unaddressable> {
        if node_id < 0 {
            return Err(Unaddressable::Negative { node_id });
        }
        Ok(Advertised {
            host: format!("{BROKER_PREFIX}{node_id}.{}", self.domain),
            port: self.advertised_port,
        })
    }

    /// What the server name `name` reaches. Exactly one label in front of the domain:
    /// `bootstrap`, or `broker-` and a node id in canonical decimal (no sign, no leading zero),
    /// so that each node has exactly one name.
    pub fn route_for_name(&self, name: Option<&str>) -> Result<Route, SniNameError> {
        let Some(name) = name else {
            return Err(SniNameError::Missing {
                domain: self.domain.clone(),
            });
        };
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        let outside = || SniNameError::OutsideDomain {
            name: shown(name),
            domain: self.domain.clone(),
        };
        let (label, rest) = trimmed.split_once('.').ok_or_else(outside)?;
        if !rest.eq_ignore_ascii_case(&self.domain) {
            return Err(outside());
        }
        if label.eq_ignore_ascii_case(BOOTSTRAP_LABEL) {
            return Ok(Route::Bootstrap);
        }
        let not_a_broker = || SniNameError::NotABroker {
            name: shown(name),
            domain: self.domain.clone(),
        };
        let digits = label
            .get(..BROKER_PREFIX.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(BROKER_PREFIX))
            .and_then(|_| label.get(BROKER_PREFIX.len()..))
            .ok_or_else(not_a_broker)?;
        parse_node_id(digits)
            .map(Route::Node)
            .ok_or_else(not_a_broker)
    }
}

/// Where clients reach each upstream node: one of the two schemes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressMap {
    PortPerNode(PortRange),
    Sni(SniDomain),
}

impl AddressMap {
    pub fn port_per_node(settings: &PortPerNodeSettings) -> Result<Self, AddressMapError> {
        PortRange::new(settings).map(Self::PortPerNode)
    }

    pub fn sni(settings: &SniSettings) -> Result<Self, AddressMapError> {
        SniDomain::new(settings).map(Self::Sni)
    }

    /// What clients are told for `node_id`.
    pub fn advertised(&self, node_id: i32) -> Result<Advertised, Unaddressable> {
        match self {
            Self::PortPerNode(range) => range.advertised(node_id),
            Self::Sni(domain) => domain.advertised(node_id),
        }
    }

    /// Whether `node_id` has an address, without building it (checked per partition).
    pub fn check(&self, node_id: i32) -> Result<(), Unaddressable> {
        match self {
            Self::PortPerNode(range) => range.offset(node_id).map(|_| ()),
            Self::Sni(_) if node_id < 0 => Err(Unaddressable::Negative { node_id }),
            Self::Sni(_) => Ok(()),
        }
    }

    /// What a connection to the local `port` reaches (port per node only: with SNI the name
    /// decides, not the port).
    pub fn node_for_port(&self, port: u16) -> Option<Route> {
        match self {
            Self::PortPerNode(range) => range.route_for_port(port),
            Self::Sni(_) => None,
        }
    }

    /// What the TLS server name `name` reaches (SNI only: with port per node every name is
    /// refused, the port decides).
    pub fn node_for_sni(&self, name: &str) -> Result<Route, SniNameError> {
        match self {
            Self::Sni(domain) => domain.route_for_name(Some(name)),
            Self::PortPerNode(_) => Err(SniNameError::NotSni { name: shown(name) }),
        }
    }
}

/// An advertised host, with `{node_id}` placeholders resolved per node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostTemplate {
    /// Literal text between placeholders; a placeholder stands between two consecutive parts.
    parts: Vec<String>,
}

impl HostTemplate {
    fn parse(template: &str) -> Result<Self, AddressMapError> {
        let bad = |reason| AddressMapError::BadHost {
            template: shown(template),
            reason,
        };
        if template.is_empty() {
            return Err(bad("it is empty"));
        }
        let parts: Vec<String> = template
            .split(NODE_ID_PLACEHOLDER)
            .map(str::to_string)
            .collect();
        let literal_len: usize = parts.iter().map(String::len).sum();
        let placeholders = parts.len().saturating_sub(1);
        if literal_len + placeholders * MAX_NODE_ID_DIGITS > MAX_HOST_LEN {
            return Err(bad("it is longer than 253 characters"));
        }
        // Letters, digits, dots and hyphens make host names; colons IPv6 literals; the
        // underscore appears in container names. Anything else (braces of a mistyped
        // placeholder, spaces, slashes) is a configuration mistake.
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_');
        if parts.iter().any(|part| !part.chars().all(allowed)) {
            return Err(bad(
                "only letters, digits, `.`, `-`, `:`, `_` and the `{node_id}` placeholder are allowed",
            ));
        }
        Ok(Self { parts })
    }

    fn render(&self, node_id: i32) -> String {
        let mut out = String::new();
        let mut parts = self.parts.iter();
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        for part in parts {
            out.push_str(&node_id.to_string());
            out.push_str(part);
        }
        out
    }
}

/// A DNS label: 1 to 63 ASCII letters, digits or hyphens, not starting or ending with `-`.
fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A node id in canonical decimal: 1 to 10 digits, no sign, no leading zero, at most
/// `i32::MAX`.
fn parse_node_id(digits: &str) -> Option<i32> {
    if digits.is_empty()
        || digits.len() > MAX_NODE_ID_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse::<i32>().ok()
}

/// A client-chosen name as an error repeats it: escaped, and cut to a bounded length.
fn shown(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i == SHOWN_NAME_LEN {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bootstrap => f.write_str("bootstrap"),
            Self::Node(id) => write!(f, "node {id}"),
        }
    }
}

#[cfg(test)]
#[path = "addressing_tests.rs"]
mod tests;
