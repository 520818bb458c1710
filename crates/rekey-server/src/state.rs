//! Owns the state every handler shares ([`AppState`]) and what is done with it on every route:
//! authorizing a caller (writing the refusal to the audit log), auditing reads, the token
//! audience and issuer. The types it holds come from modules that do not need the state back
//! (`jwt`, `dataplane::parts`, `web::session`), so nothing imports in a circle through it.

use std::sync::Arc;

use rekey_api::RenderContext;
use rekey_store::{AuditRecord, Store};
use uuid::Uuid;

use crate::authz::Caller;
use crate::dataplane::parts::DataPlane;
use crate::error::ApiError;
use crate::jwt::TokenIssuer;
pub use crate::request_ids::{new_request_id, request_id_header, RequestId};
pub(crate) use crate::request_ids::{
    next_request_id, CLIENT_REQUEST_ID, CORRELATION_ID, REQUEST_ID,
};
use crate::web::session::Sessions;

/// What every handler shares: the store, how answers are rendered, the data plane's index, the
/// token issuer and the web page's sessions.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ctx: Arc<RenderContext>,
    pub tenant_id: Uuid,
    pub openapi: Arc<serde_json::Value>,
    pub dataplane: Arc<DataPlane>,
    /// Webhook delivery: the handshake client, and the task woken after writes.
    pub events: Arc<crate::events::Events>,
    pub issuer: Arc<TokenIssuer>,
    /// The web page's sign-in sessions (`web::session`).
    pub sessions: Arc<Sessions>,
    /// Who may read `GET /metrics` (`--metrics-access`).
    pub metrics_access: crate::metrics::Access,
}

impl AppState {
    /// Allows the call, or refuses it with 403 and records the refusal. Returns the audit record to
    /// write with the change.
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        scope: &str,
    ) -> Result<AuditRecord, ApiError> {
        if caller.can(action, scope) {
            return Ok(caller.record(action, scope, "Succeeded"));
        }
        self.store
            .append_audit(&caller.record(action, scope, "Denied"))
            .await?;
        Err(caller.denied(action, scope))
    }

    /// Records a completed read (a key read) before its answer leaves; without the record, no answer.
    pub async fn audit_read(&self, record: &AuditRecord) -> Result<(), ApiError> {
        self.store.append_audit(record).await.map_err(|e| {
            tracing::error!(error = %e, "could not write an audit record; refusing the read");
            ApiError::Unavailable
        })
    }

    /// The audience rekey's access tokens carry: the management endpoint, as az uses it.
    pub fn token_audience(&self) -> String {
        format!("{}/", self.ctx.public_url)
    }

    pub fn token_issuer_url(&self) -> String {
        format!("{}/{}/v2.0", self.ctx.public_url, self.tenant_id)
    }
}
