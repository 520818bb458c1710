//! Owns writing last-use times: the data plane notes each accepted key on its index entry (an atomic
//! store, no lock), and this task takes the noted uses every interval and writes them in one batch,
//! so no request waits on the store.

use std::sync::Arc;
use std::time::Duration;

use rekey_store::Store;

use super::index::KeyIndex;

/// Writes what was noted since the last flush.
pub async fn flush(index: &KeyIndex, store: &dyn Store) {
    let batch = index.drain_uses();
    if let Err(e) = store.record_key_uses(&batch).await {
        tracing::warn!(error = %e, dropped = batch.len(), "could not record key last-use times");
    }
}

pub fn spawn_flusher(dataplane: Arc<super::DataPlane>, store: Arc<dyn Store>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            flush(&dataplane.index, store.as_ref()).await;
        }
    });
}
