//! Owns what the data plane's unit tests build their store from: a SQLite store in a temporary
//! directory with a subscription and a resource group, and Cognitive Services accounts in it.

use std::sync::Arc;

use rekey_core::providers::cognitive_services::ACCOUNTS;
use rekey_core::{
    Resource, ResourceGroupName, ResourceId, ResourceName, ResourceSpec, SubscriptionId,
};
use rekey_store::{AuditRecord, MasterKey, Sealer, SqliteStore, Store};
use time::OffsetDateTime;

/// The audit record the tests' writes carry.
pub fn audit() -> AuditRecord {
    AuditRecord {
        at: OffsetDateTime::now_utc(),
        principal_id: "tester".into(),
        action: "test".into(),
        scope: "/".into(),
        source: "127.0.0.1".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        result: "Succeeded".into(),
    }
}

/// A SQLite store holding one subscription and its resource group `rg`; the directory must outlive it.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    subscription: SubscriptionId,
    group: ResourceGroupName,
}

impl TestStore {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(
                &SqliteStore::url_in(dir.path()),
                Sealer::new(&MasterKey::generate()),
            )
            .await
            .expect("SQLite opens"),
        );
        let subscription = SubscriptionId::random();
        store
            .put_subscription(&subscription, "test", &audit())
            .await
            .unwrap();
        let group = ResourceGroupName::parse("rg").unwrap();
        store
            .put_group(
                &rekey_core::ResourceGroup {
                    subscription: subscription.clone(),
                    name: group.clone(),
                    location: "westeurope".into(),
                    tags: Default::default(),
                    created_at: OffsetDateTime::now_utc(),
                },
                &audit(),
            )
            .await
            .unwrap();
        Self {
            dir,
            store,
            subscription,
            group,
        }
    }

    /// Creates the Cognitive Services account `name`, each slot's key `{key_prefix}-{slot}`.
    pub async fn account(&self, name: &str, key_prefix: &str) -> (Resource, ResourceId) {
        let id = ResourceId {
            subscription: self.subscription.clone(),
            group: self.group.clone(),
            provider: &ACCOUNTS,
            name: ResourceName::parse(&ACCOUNTS, name).unwrap(),
        };
        let spec = ResourceSpec {
            location: "westeurope".into(),
            kind: None,
            sku: None,
            tags: Default::default(),
            settings: serde_json::Map::new(),
        };
        let keys = ACCOUNTS
            .slots
            .iter()
            .map(|slot| {
                let key = format!("{key_prefix}-{}", slot.name);
                (slot, rekey_core::Secret::new(key))
            })
            .collect();
        let (resource, _) = self
            .store
            .put_resource(&id, &spec, keys, None, &audit())
            .await
            .unwrap();
        (resource, id)
    }
}
