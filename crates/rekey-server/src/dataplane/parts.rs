//! Owns the data plane's shared parts, [`DataPlane`], as the application state holds them. Kept
//! apart from the data plane's handlers, which need that state: the state needs this, not them.

use super::index::KeyIndex;
use super::{gateway, proxies, refusal_log, throttle, usage};

/// The data plane's shared parts.
pub struct DataPlane {
    pub index: KeyIndex,
    /// Last uses and usage counts taken from the index and not yet written.
    pub uses: usage::Backlog<rekey_store::KeyUse>,
    pub counts: usage::Backlog<rekey_store::SlotUsage>,
    /// This node's lease among the nodes sharing the database, when writes wait for every node to
    /// apply them (PostgreSQL with a zero staleness bound).
    pub membership: Option<std::sync::Arc<super::membership::Membership>>,
    pub throttle: throttle::Throttle,
    pub client: gateway::HttpClient,
    /// Largest request body a data-plane call may send (`--max-data-plane-body-bytes`).
    pub max_body_bytes: usize,
    /// Whose `X-Forwarded-For` names the client (`--trusted-proxies`).
    pub trusted_proxies: proxies::TrustedProxies,
    pub refusal_log: refusal_log::RefusalLog,
    /// How long after its regeneration a presented old key is recognised as such (microseconds,
    /// `--retired-key-window-seconds`).
    pub retired_window_micros: i64,
}
