//! Owns first start: the tenant, the default subscription and the owner principal, made once per
//! database. The owner token is written to `bootstrap.json` (mode 0600) in the data directory and
//! shown nowhere else; the store keeps only its digest.

use std::path::{Path, PathBuf};

use rekey_core::keys::random_base62;
use rekey_core::{Secret, SubscriptionId};
use rekey_store::crypto::{token_digest, write_private};
use rekey_store::{BootstrapRecord, Store};
use uuid::Uuid;

/// A new management token: `rkt_` and 43 base62 characters (about 256 bits).
pub fn new_token() -> Secret {
    Secret::new(format!("rkt_{}", random_base62(43)))
}

/// Makes the bootstrap record if none exists, writing `bootstrap.json`; returns the record in force
/// and the file's path if this call wrote it.
pub async fn ensure(
    store: &dyn Store,
    data_dir: &Path,
) -> anyhow::Result<(BootstrapRecord, Option<PathBuf>)> {
    if let Some(record) = store.bootstrap().await? {
        return Ok((record, None));
    }
    let token = new_token();
    let proposed = BootstrapRecord {
        tenant_id: Uuid::new_v4(),
        subscription_id: SubscriptionId::random(),
        principal_id: Uuid::new_v4(),
    };
    let (record, created) = store
        .init_bootstrap(proposed, token_digest(token.expose()))
        .await?;
    if !created {
        return Ok((record, None));
    }
    let path = data_dir.join("bootstrap.json");
    let body = zeroize::Zeroizing::new(
        serde_json::json!({
            "token": token.expose(),
            "subscriptionId": record.subscription_id.as_str(),
            "tenantId": record.tenant_id.to_string(),
            "principalId": record.principal_id.to_string(),
        })
        .to_string(),
    );
    // A stale file from an earlier database would hold a token that no longer works.
    let _ = std::fs::remove_file(&path);
    write_private(&path, body.as_bytes())?;
    Ok((record, Some(path)))
}
