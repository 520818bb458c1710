//! Owns last-use tracking: the data plane notes each accepted key in memory (a map insert), and a
//! background task writes the batch to the store every interval, so no request waits on a write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rekey_store::{KeyUse, Store};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Default)]
pub struct Usage {
    pending: Mutex<HashMap<(Uuid, &'static str, i64), OffsetDateTime>>,
}

impl Usage {
    pub fn record(&self, resource: Uuid, slot: &'static str, generation: i64) {
        let now = OffsetDateTime::now_utc();
        self.pending
            .lock()
            .expect("usage lock is never poisoned")
            .insert((resource, slot, generation), now);
    }

    /// Writes what was recorded since the last flush.
    pub async fn flush(&self, store: &dyn Store) {
        let batch: Vec<KeyUse> = {
            let mut pending = self.pending.lock().expect("usage lock is never poisoned");
            pending
                .drain()
                .map(|((resource, slot, generation), at)| KeyUse {
                    resource,
                    slot,
                    generation,
                    at,
                })
                .collect()
        };
        if let Err(e) = store.record_key_uses(&batch).await {
            tracing::warn!(error = %e, dropped = batch.len(), "could not record key last-use times");
        }
    }

    pub fn spawn_flusher(self: &Arc<Self>, store: Arc<dyn Store>, every: Duration) {
        let usage = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                usage.flush(store.as_ref()).await;
            }
        });
    }
}
