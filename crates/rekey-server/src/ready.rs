//! Owns the ready file (`--ready-file`): the machine-readable signal that rekeyd is listening, for
//! test harnesses and supervisors that would otherwise scrape the log for the address. It names the
//! URL to call, the owner token when this node can vouch for it, and the bootstrap ids.
//!
//! The file is written once the socket is bound (connections queue from then on), atomically (a
//! private temporary file renamed into place, so a reader never sees half of it) and with mode 0600,
//! since it may hold the owner token. A ready file left by an earlier run is removed before anything
//! else, so a waiter never takes an old address for the new one.

use std::path::{Path, PathBuf};

use rekey_store::crypto::{token_digest, write_private};
use rekey_store::{BootstrapRecord, Store};
use zeroize::Zeroizing;

/// Removes a ready file an earlier run left behind.
pub fn clear(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(anyhow::Error::new(e)
            .context(format!("removing the old ready file {}", path.display()))),
        _ => Ok(()),
    }
}

/// The owner token this node can vouch for: the one in its data directory's `bootstrap.json`
/// (written by this start or an earlier one on the same database) if the store still takes it as
/// the active owner's. The store keeps only the token's digest, so a node that joined a database
/// another node bootstrapped has none to give.
async fn owner_token(
    store: &dyn Store,
    bootstrap_file: &Path,
    record: &BootstrapRecord,
) -> Option<Zeroizing<String>> {
    let text = Zeroizing::new(std::fs::read_to_string(bootstrap_file).ok()?);
    let file: serde_json::Value = serde_json::from_str(&text).ok()?;
    if file["subscriptionId"].as_str() != Some(record.subscription_id.as_str()) {
        return None;
    }
    let token = Zeroizing::new(file["token"].as_str()?.to_string());
    let owner = store
        .principal_by_token(&token_digest(&token))
        .await
        .ok()??;
    (owner.is_owner
        && owner.id == record.principal_id
        && owner.active(time::OffsetDateTime::now_utc()))
    .then_some(token)
}

/// Writes `{url, token, subscriptionId, tenantId, principalId}` to `path` (`token` left out when
/// [`owner_token`] finds none).
pub async fn write(
    path: &Path,
    url: &str,
    store: &dyn Store,
    data_dir: &Path,
    record: &BootstrapRecord,
) -> anyhow::Result<()> {
    let token = owner_token(store, &data_dir.join("bootstrap.json"), record).await;
    let mut body = serde_json::json!({
        "url": url,
        "subscriptionId": record.subscription_id.as_str(),
        "tenantId": record.tenant_id.to_string(),
        "principalId": record.principal_id.to_string(),
    });
    if let Some(token) = &token {
        body["token"] = serde_json::Value::String(token.to_string());
    }
    let text = Zeroizing::new(body.to_string());
    let temporary = temporary_path(path);
    let _ = std::fs::remove_file(&temporary);
    let written =
        write_private(&temporary, text.as_bytes()).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(
            anyhow::Error::new(e).context(format!("writing the ready file {}", path.display()))
        );
    }
    Ok(())
}

/// A name beside `path` (same directory, so the rename is atomic) that no other rekeyd picks.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}
