//! The store conformance suite: every [`Store`] method exercised through the trait object the server
//! holds, each test written once and run on both backends ([`conformance!`]): SQLite in a temporary
//! directory, and PostgreSQL in a fresh database on the server `REKEY_TEST_POSTGRES_URL` names,
//! dropped afterwards. Without that server the PostgreSQL run fails, unless
//! `REKEY_TEST_BACKENDS=sqlite` leaves PostgreSQL out on purpose (and each run says so).

use std::future::Future;
use std::sync::Arc;

use rekey_core::providers::{cognitive_services::ACCOUNTS, cosmos_db::DATABASE_ACCOUNTS};
use rekey_core::{
    Provider, ResourceGroup, ResourceGroupName, ResourceId, ResourceName, ResourceSpec, Secret,
    SubscriptionId,
};
use rekey_store::{
    events, AuditRecord, BootstrapRecord, ChainCheck, ChangeNotice, DeliveryOutcome,
    EventSubscription, KeyUse, MasterKey, Operation, PgStore, PgStoreOptions, Principal,
    RegenerateOptions, Remember, RoleAssignment, Sealer, SigningKey, SlotUsage, SqliteStore, Store,
    StoreError, Written,
};
use rekey_testkit::{postgres_admin_url, postgres_wanted, Backend, TestDatabase};
use sqlx::Connection;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A store under test, with what it takes to reach its database behind the trait's back (only to
/// tamper with the audit log, as an attacker with database access would).
struct TestStore {
    store: Arc<dyn Store>,
    backend: Backend,
    url: String,
    _dir: Option<tempfile::TempDir>,
    _database: Option<TestDatabase>,
}

impl TestStore {
    /// A fresh, empty store on `backend`; `None` when PostgreSQL is left out on purpose.
    async fn open(backend: Backend) -> Option<Self> {
        let sealer = Sealer::new(&MasterKey::generate());
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = SqliteStore::url_in(dir.path());
                let store = SqliteStore::open(&url, sealer).await.expect("SQLite opens");
                Some(Self {
                    store: Arc::new(store),
                    backend,
                    url,
                    _dir: Some(dir),
                    _database: None,
                })
            }
            Backend::Postgres => {
                if !postgres_wanted() {
                    return None;
                }
                let admin = postgres_admin_url().expect("checked by postgres_wanted");
                let database = TestDatabase::create(&admin).await;
                let store = PgStore::connect(&database.url, sealer, PgStoreOptions::default())
                    .await
                    .expect("PostgreSQL connects");
                Some(Self {
                    store: Arc::new(store),
                    backend,
                    url: database.url.clone(),
                    _dir: None,
                    _database: Some(database),
                })
            }
        }
    }

    /// Runs one statement on the database directly.
    async fn tamper(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
        }
    }
}

async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestStore) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(store) = TestStore::open(backend).await {
        test(store).await
    }
}

/// Defines, for each named `async fn(TestStore)`, a module of the same name with two tests:
/// `sqlite` and `postgres`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::run(super::Backend::Sqlite, super::$name).await
            }
            #[tokio::test]
            async fn postgres() {
                super::run(super::Backend::Postgres, super::$name).await
            }
        }
    )*};
}

conformance!(
    bootstrap_is_made_once_and_later_proposals_get_the_first_record,
    principals_are_found_by_id_and_token_and_revoked_for_good,
    subscriptions_are_created_then_renamed_and_unknown_ones_are_not_found,
    groups_keep_their_first_casing_and_deleting_one_takes_its_resources,
    resources_are_created_with_keys_and_replaced_without_touching_them,
    missing_parents_give_the_most_precise_not_found,
    regenerating_one_slot_leaves_the_others_and_bumps_its_generation,
    the_index_holds_digests_and_plain_keys_only_for_signing_types,
    a_key_current_or_replaced_leads_to_its_resource,
    the_change_feed_lists_changed_resources_in_commit_order,
    the_index_load_reads_every_resource_a_page_at_a_time,
    key_uses_record_the_latest_use_of_the_current_key_only,
    signing_keys_rotate_newest_first_and_retire_the_previous,
    operations_are_recorded_with_their_change_and_scoped_to_a_subscription,
    assignments_are_idempotent_and_refuse_a_changed_or_duplicate_grant,
    assignments_go_with_their_scope,
    audit_records_filter_by_subscription_and_time_oldest_first,
    the_audit_chain_detects_an_edited_record,
    the_audit_chain_detects_a_deleted_record,
    only_postgres_has_change_notices_to_listen_for,
    usage_counts_from_several_nodes_add_up_and_the_latest_client_wins,
    a_regeneration_retires_the_old_digest_and_a_taken_token_changes_nothing,
    a_regeneration_queues_one_delivery_per_validated_subscription_held_by_one_claimer,
    a_key_past_its_maximum_age_is_reported_once_per_generation,
    only_postgres_keeps_a_node_table_where_expulsion_and_renewal_exclude_each_other,
);

// ---- fixtures ----

fn audit(scope: &str, action: &str) -> AuditRecord {
    AuditRecord {
        at: OffsetDateTime::now_utc(),
        principal_id: "tester".into(),
        action: action.into(),
        scope: scope.into(),
        source: "127.0.0.1".into(),
        request_id: Uuid::new_v4().to_string(),
        result: "Succeeded".into(),
    }
}

fn spec(location: &str) -> ResourceSpec {
    ResourceSpec {
        location: location.into(),
        kind: Some("OpenAI".into()),
        sku: Some(serde_json::json!({ "name": "S0" })),
        tags: [("env".to_string(), "test".to_string())].into(),
        settings: serde_json::Map::new(),
    }
}

fn secret(text: &str) -> Secret {
    Secret::new(text.to_string())
}

fn initial_keys(
    provider: &'static Provider,
    tag: &str,
) -> Vec<(&'static rekey_core::providers::Slot, Secret)> {
    provider
        .slots
        .iter()
        .map(|slot| (slot, secret(&format!("{tag}-{}", slot.name))))
        .collect()
}

/// A subscription with one group `rg-One`.
async fn group_fixture(s: &dyn Store) -> (SubscriptionId, ResourceGroupName) {
    let sub = SubscriptionId::random();
    s.put_subscription(
        &sub,
        "test",
        &audit(&format!("/subscriptions/{sub}"), "put"),
    )
    .await
    .unwrap();
    let name = ResourceGroupName::parse("rg-One").unwrap();
    let group = ResourceGroup {
        subscription: sub.clone(),
        name: name.clone(),
        location: "westeurope".into(),
        tags: Default::default(),
        created_at: OffsetDateTime::now_utc(),
    };
    s.put_group(
        &group,
        &audit(
            &format!("/subscriptions/{sub}/resourceGroups/{name}"),
            "put",
        ),
    )
    .await
    .unwrap();
    (sub, name)
}

fn resource_id(
    sub: &SubscriptionId,
    group: &ResourceGroupName,
    provider: &'static Provider,
    name: &str,
) -> ResourceId {
    ResourceId {
        subscription: sub.clone(),
        group: group.clone(),
        provider,
        name: ResourceName::parse(provider, name).unwrap(),
    }
}

/// A Cognitive Services account `acct-1` in a fresh group, with keys tagged `first`.
async fn resource_fixture(s: &dyn Store) -> ResourceId {
    let (sub, group) = group_fixture(s).await;
    let id = resource_id(&sub, &group, &ACCOUNTS, "acct-1");
    s.put_resource(
        &id,
        &spec("westeurope"),
        initial_keys(&ACCOUNTS, "first"),
        None,
        &audit(&id.to_string(), "put"),
    )
    .await
    .unwrap();
    id
}

fn principal(name: &str) -> Principal {
    Principal {
        id: Uuid::new_v4(),
        display_name: name.into(),
        is_owner: false,
        expires_at: Some(OffsetDateTime::now_utc() + Duration::days(1)),
        revoked_at: None,
        created_by: Some("tester".into()),
        created_at: OffsetDateTime::now_utc(),
    }
}

fn assignment(scope: &str, role: Uuid, principal: Uuid) -> RoleAssignment {
    RoleAssignment {
        id: Uuid::new_v4(),
        scope: scope.into(),
        role_id: role,
        principal_id: principal,
        created_at: OffsetDateTime::now_utc(),
        created_by: "tester".into(),
    }
}

async fn chain_records(s: &dyn Store) -> u64 {
    match s.verify_audit_chain().await.unwrap() {
        ChainCheck::Intact { records } => records,
        broken => panic!("the chain should be intact: {broken:?}"),
    }
}

// ---- tests ----

async fn bootstrap_is_made_once_and_later_proposals_get_the_first_record(t: TestStore) {
    let s = &*t.store;
    assert!(s.bootstrap().await.unwrap().is_none());
    let first = BootstrapRecord {
        tenant_id: Uuid::new_v4(),
        subscription_id: SubscriptionId::random(),
        principal_id: Uuid::new_v4(),
    };
    let (record, made) = s.init_bootstrap(first.clone(), [7; 32]).await.unwrap();
    assert!(made);
    assert_eq!(record.principal_id, first.principal_id);
    let second = BootstrapRecord {
        tenant_id: Uuid::new_v4(),
        subscription_id: SubscriptionId::random(),
        principal_id: Uuid::new_v4(),
    };
    let (record, made) = s.init_bootstrap(second, [8; 32]).await.unwrap();
    assert!(
        !made,
        "a second node must not make another bootstrap record"
    );
    assert_eq!(record.tenant_id, first.tenant_id);
    assert_eq!(record.subscription_id, first.subscription_id);
    let stored = s.bootstrap().await.unwrap().unwrap();
    assert_eq!(stored.principal_id, first.principal_id);

    let owner = s.principal_by_token(&[7; 32]).await.unwrap().unwrap();
    assert_eq!(owner.id, first.principal_id);
    assert!(owner.is_owner);
    assert!(s.principal_by_token(&[8; 32]).await.unwrap().is_none());
    let subs = s.list_subscriptions().await.unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].id, first.subscription_id);
}

async fn principals_are_found_by_id_and_token_and_revoked_for_good(t: TestStore) {
    let s = &*t.store;
    let alice = principal("alice");
    let bob = principal("bob");
    s.create_principal(&alice, [1; 32], &audit("/", "create"))
        .await
        .unwrap();
    s.create_principal(&bob, [2; 32], &audit("/", "create"))
        .await
        .unwrap();

    let found = s.principal(&alice.id).await.unwrap().unwrap();
    assert_eq!(found.display_name, "alice");
    assert!(!found.is_owner);
    assert_eq!(found.created_by.as_deref(), Some("tester"));
    assert!(found.active(OffsetDateTime::now_utc()));
    assert_eq!(
        s.principal_by_token(&[2; 32]).await.unwrap().unwrap().id,
        bob.id
    );
    assert!(s.principal(&Uuid::new_v4()).await.unwrap().is_none());
    let names: Vec<String> = s
        .list_principals()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.display_name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    let before = chain_records(s).await;
    assert!(s
        .revoke_principal(&alice.id, &audit("/", "revoke"))
        .await
        .unwrap());
    let revoked = s.principal_by_token(&[1; 32]).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!revoked.active(OffsetDateTime::now_utc()));
    // A second revocation finds the principal but changes nothing, so it leaves no record.
    assert!(s
        .revoke_principal(&alice.id, &audit("/", "revoke"))
        .await
        .unwrap());
    assert_eq!(chain_records(s).await, before + 1);
    assert!(!s
        .revoke_principal(&Uuid::new_v4(), &audit("/", "revoke"))
        .await
        .unwrap());
    assert!(s
        .principal(&bob.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_none());
}

async fn subscriptions_are_created_then_renamed_and_unknown_ones_are_not_found(t: TestStore) {
    let s = &*t.store;
    let sub = SubscriptionId::random();
    let scope = format!("/subscriptions/{sub}");
    let (created, written) = s
        .put_subscription(&sub, "first", &audit(&scope, "put"))
        .await
        .unwrap();
    assert_eq!(written, Written::Created);
    assert_eq!(created.display_name, "first");
    let (renamed, written) = s
        .put_subscription(&sub, "second", &audit(&scope, "put"))
        .await
        .unwrap();
    assert_eq!(written, Written::Updated);
    assert_eq!(renamed.display_name, "second");
    assert_eq!(renamed.created_at, created.created_at);
    assert_eq!(s.subscription(&sub).await.unwrap().display_name, "second");
    assert_eq!(s.list_subscriptions().await.unwrap().len(), 1);

    let unknown = SubscriptionId::random();
    let err = s.subscription(&unknown).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SubscriptionNotFound(ref id) if *id == unknown),
        "{err}"
    );
}

async fn groups_keep_their_first_casing_and_deleting_one_takes_its_resources(t: TestStore) {
    let s = &*t.store;
    let (sub, name) = group_fixture(s).await;
    let lower = ResourceGroupName::parse("rg-one").unwrap();
    let update = ResourceGroup {
        subscription: sub.clone(),
        name: lower.clone(),
        location: "westeurope".into(),
        tags: [("team".to_string(), "a".to_string())].into(),
        created_at: OffsetDateTime::now_utc(),
    };
    let (stored, written) = s.put_group(&update, &audit("/", "put")).await.unwrap();
    assert_eq!(written, Written::Updated);
    assert_eq!(
        stored.name.as_str(),
        "rg-One",
        "the group keeps the casing it was created with"
    );
    assert_eq!(stored.tags.get("team").map(String::as_str), Some("a"));
    assert_eq!(s.group(&sub, &lower).await.unwrap().name.as_str(), "rg-One");

    let other = ResourceGroup {
        name: ResourceGroupName::parse("another").unwrap(),
        ..update.clone()
    };
    s.put_group(&other, &audit("/", "put")).await.unwrap();
    let names: Vec<String> = s
        .list_groups(&sub)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name.to_string())
        .collect();
    assert_eq!(names, ["another", "rg-One"]);

    let id = resource_id(&sub, &name, &ACCOUNTS, "acct-1");
    s.put_resource(
        &id,
        &spec("westeurope"),
        initial_keys(&ACCOUNTS, "k"),
        None,
        &audit("/", "put"),
    )
    .await
    .unwrap();
    assert!(s
        .delete_group(&sub, &lower, &audit("/", "delete"))
        .await
        .unwrap());
    assert!(!s
        .delete_group(&sub, &lower, &audit("/", "delete"))
        .await
        .unwrap());
    let err = s.group(&sub, &name).await.unwrap_err();
    assert!(matches!(err, StoreError::ResourceGroupNotFound(_)), "{err}");
    let err = s.resource(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::ResourceGroupNotFound(_)), "{err}");
    assert!(s.index_entries(None).await.unwrap().is_empty());
    assert_eq!(s.list_groups(&sub).await.unwrap().len(), 1);
}

async fn resources_are_created_with_keys_and_replaced_without_touching_them(t: TestStore) {
    let s = &*t.store;
    let (sub, group) = group_fixture(s).await;
    let id = resource_id(&sub, &group, &ACCOUNTS, "acct-1");
    let (created, written) = s
        .put_resource(
            &id,
            &spec("westeurope"),
            initial_keys(&ACCOUNTS, "first"),
            None,
            &audit("/", "put"),
        )
        .await
        .unwrap();
    assert_eq!(written, Written::Created);
    assert_eq!(created.spec, spec("westeurope"));

    let mut replaced_spec = spec("westeurope");
    replaced_spec.kind = Some("TextAnalytics".into());
    let (replaced, written) = s
        .put_resource(
            &id,
            &replaced_spec,
            initial_keys(&ACCOUNTS, "ignored"),
            None,
            &audit("/", "put"),
        )
        .await
        .unwrap();
    assert_eq!(written, Written::Updated);
    assert_eq!(replaced.internal_id, created.internal_id);
    assert_ne!(replaced.etag, created.etag, "a replacement gets a new etag");
    assert_eq!(replaced.spec.kind.as_deref(), Some("TextAnalytics"));
    let (_, slots) = s.keys(&id).await.unwrap();
    let secrets: Vec<(&str, &str, i64)> = slots
        .iter()
        .map(|k| (k.slot.name, k.secret.expose(), k.generation))
        .collect();
    assert_eq!(
        secrets,
        [("key1", "first-key1", 1), ("key2", "first-key2", 1)]
    );

    let mut patch = replaced_spec.clone();
    patch.tags.insert("owner".into(), "me".into());
    patch
        .settings
        .insert("disableLocalAuth".into(), serde_json::Value::Bool(true));
    let updated = s
        .update_resource(&id, &patch, &audit("/", "patch"))
        .await
        .unwrap();
    assert_eq!(updated.spec, patch);
    assert_ne!(updated.etag, replaced.etag);
    let read = s.resource(&id).await.unwrap();
    assert_eq!(read.spec, patch);
    assert_eq!(read.etag, updated.etag);
    assert_eq!(read.id.to_string(), id.to_string());

    let second = resource_id(&sub, &group, &ACCOUNTS, "acct-0");
    s.put_resource(
        &second,
        &spec("westeurope"),
        initial_keys(&ACCOUNTS, "b"),
        None,
        &audit("/", "put"),
    )
    .await
    .unwrap();
    let cosmos = resource_id(&sub, &group, &DATABASE_ACCOUNTS, "db-1");
    s.put_resource(
        &cosmos,
        &spec("westeurope"),
        initial_keys(&DATABASE_ACCOUNTS, "c"),
        None,
        &audit("/", "put"),
    )
    .await
    .unwrap();
    let names = |list: Vec<rekey_core::Resource>| {
        list.into_iter()
            .map(|r| r.id.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            s.list_resources(&sub, Some(&group), &ACCOUNTS)
                .await
                .unwrap()
        ),
        ["acct-0", "acct-1"]
    );
    assert_eq!(
        names(s.list_resources(&sub, None, &ACCOUNTS).await.unwrap()),
        ["acct-0", "acct-1"]
    );
    assert_eq!(
        names(
            s.list_resources(&sub, None, &DATABASE_ACCOUNTS)
                .await
                .unwrap()
        ),
        ["db-1"]
    );

    assert!(s
        .delete_resource(&id, None, &audit("/", "delete"))
        .await
        .unwrap());
    assert!(!s
        .delete_resource(&id, None, &audit("/", "delete"))
        .await
        .unwrap());
    let err = s.resource(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::ResourceNotFound(_)), "{err}");
    let err = s.keys(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::ResourceNotFound(_)), "{err}");
}

async fn missing_parents_give_the_most_precise_not_found(t: TestStore) {
    let s = &*t.store;
    let (sub, group) = group_fixture(s).await;
    let unknown_sub = SubscriptionId::random();
    let unknown_group = ResourceGroupName::parse("nowhere").unwrap();

    let id = resource_id(&unknown_sub, &group, &ACCOUNTS, "acct-1");
    let err = s.resource(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::SubscriptionNotFound(_)), "{err}");
    let id = resource_id(&sub, &unknown_group, &ACCOUNTS, "acct-1");
    let err = s
        .put_resource(
            &id,
            &spec("westeurope"),
            initial_keys(&ACCOUNTS, "k"),
            None,
            &audit("/", "put"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ResourceGroupNotFound(_)), "{err}");
    let err = s
        .list_resources(&sub, Some(&unknown_group), &ACCOUNTS)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ResourceGroupNotFound(_)), "{err}");
    let err = s
        .list_resources(&unknown_sub, None, &ACCOUNTS)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SubscriptionNotFound(_)), "{err}");
    let err = s.list_groups(&unknown_sub).await.unwrap_err();
    assert!(matches!(err, StoreError::SubscriptionNotFound(_)), "{err}");
    let err = s.group(&unknown_sub, &group).await.unwrap_err();
    assert!(matches!(err, StoreError::SubscriptionNotFound(_)), "{err}");
    let orphan = ResourceGroup {
        subscription: unknown_sub.clone(),
        name: group.clone(),
        location: "westeurope".into(),
        tags: Default::default(),
        created_at: OffsetDateTime::now_utc(),
    };
    let err = s.put_group(&orphan, &audit("/", "put")).await.unwrap_err();
    assert!(matches!(err, StoreError::SubscriptionNotFound(_)), "{err}");
    let err = s
        .delete_group(&unknown_sub, &group, &audit("/", "delete"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SubscriptionNotFound(_)), "{err}");
    let id = resource_id(&sub, &group, &ACCOUNTS, "absent");
    let err = s
        .regenerate(
            &id,
            initial_keys(&ACCOUNTS, "x"),
            None,
            &audit("/", "regen"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ResourceNotFound(_)), "{err}");
    let err = s
        .update_resource(&id, &spec("westeurope"), &audit("/", "patch"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ResourceNotFound(_)), "{err}");
}

async fn regenerating_one_slot_leaves_the_others_and_bumps_its_generation(t: TestStore) {
    let s = &*t.store;
    let id = resource_fixture(s).await;
    let key2 = ACCOUNTS.slot("key2").unwrap();
    let (resource, slots) = s
        .regenerate(
            &id,
            vec![(key2, secret("second-key2"))],
            None,
            &audit("/", "regen"),
        )
        .await
        .unwrap();
    assert_eq!(resource.id.to_string(), id.to_string());
    let state: Vec<(&str, &str, i64)> = slots
        .iter()
        .map(|k| (k.slot.name, k.secret.expose(), k.generation))
        .collect();
    assert_eq!(
        state,
        [("key1", "first-key1", 1), ("key2", "second-key2", 2)]
    );
    let (_, read) = s.keys(&id).await.unwrap();
    let state: Vec<(&str, &str, i64)> = read
        .iter()
        .map(|k| (k.slot.name, k.secret.expose(), k.generation))
        .collect();
    assert_eq!(
        state,
        [("key1", "first-key1", 1), ("key2", "second-key2", 2)]
    );
    assert!(read[1].created_at >= read[0].created_at);
}

async fn a_key_current_or_replaced_leads_to_its_resource(t: TestStore) {
    let s = &*t.store;
    let id = resource_fixture(s).await;
    let key1 = ACCOUNTS.slot("key1").unwrap();
    let (resource, before) = s.keys(&id).await.unwrap();
    let old = before[0].secret.expose().to_string();
    let options = RegenerateOptions {
        grace: Some(Duration::seconds(60)),
        remember: None,
    };
    s.regenerate_with(
        &id,
        vec![(key1, secret("new-1"))],
        None,
        &audit("/", "r"),
        &options,
    )
    .await
    .unwrap();
    let found = |key: &str| {
        let digest = s.key_digest(key);
        async move { s.resource_with_key(&digest).await.unwrap() }
    };
    assert_eq!(found("new-1").await, Some(resource.internal_id));
    assert_eq!(
        found(&old).await,
        Some(resource.internal_id),
        "a replaced key is still told apart from a guess"
    );
    assert_eq!(found("never-issued").await, None);
}

async fn the_index_holds_digests_and_plain_keys_only_for_signing_types(t: TestStore) {
    let s = &*t.store;
    let id = resource_fixture(s).await;
    let cosmos = resource_id(&id.subscription, &id.group, &DATABASE_ACCOUNTS, "db-1");
    let (db, _) = s
        .put_resource(
            &cosmos,
            &spec("westeurope"),
            initial_keys(&DATABASE_ACCOUNTS, "c"),
            None,
            &audit("/", "put"),
        )
        .await
        .unwrap();
    let entries = s.index_entries(None).await.unwrap();
    assert_eq!(entries.len(), 2);
    let account = entries
        .iter()
        .find(|e| e.resource.id.provider.namespace == ACCOUNTS.namespace)
        .unwrap();
    let key1 = account
        .slots
        .iter()
        .find(|k| k.slot.name == "key1")
        .unwrap();
    assert_eq!(
        key1.digest,
        s.key_digest("first-key1"),
        "the index finds a presented key by its digest"
    );
    assert_ne!(key1.digest, s.key_digest("first-key2"));
    assert_eq!(key1.generation, 1);
    assert!(
        account.slots.iter().all(|k| k.secret.is_none()),
        "no plain key for a type that sends its key"
    );

    let only = s
        .index_entries(Some(&[db.internal_id, Uuid::new_v4()]))
        .await
        .unwrap();
    assert_eq!(only.len(), 1, "an unknown resource is simply absent");
    assert_eq!(only[0].slots.len(), 4);
    let primary = only[0]
        .slots
        .iter()
        .find(|k| k.slot.name == "primary")
        .unwrap();
    assert_eq!(
        primary.secret.as_ref().map(Secret::expose),
        Some("c-primary")
    );

    s.delete_resource(&cosmos, None, &audit("/", "delete"))
        .await
        .unwrap();
    assert!(s
        .index_entries(Some(&[db.internal_id]))
        .await
        .unwrap()
        .is_empty());
}

async fn the_index_load_reads_every_resource_a_page_at_a_time(t: TestStore) {
    let s = &*t.store;
    let (sub, group) = group_fixture(s).await;
    // More than one of SQLite's pages (1,000 resources), one of them signing requests.
    let cosmos = resource_id(&sub, &group, &DATABASE_ACCOUNTS, "db-1");
    s.put_resource(
        &cosmos,
        &spec("westeurope"),
        initial_keys(&DATABASE_ACCOUNTS, "c"),
        None,
        &audit("/", "put"),
    )
    .await
    .unwrap();
    for i in 0..1_000 {
        let id = resource_id(&sub, &group, &ACCOUNTS, &format!("acct-{i}"));
        let mut settings = spec("westeurope");
        if i == 7 {
            // What the index reads from the settings: key auth off, and an upstream.
            settings
                .settings
                .insert("disableLocalAuth".into(), true.into());
            settings.settings.insert(
                "x-rekey-upstream".into(),
                "http://127.0.0.1:9/api\u{1f}\u{1e} x".into(),
            );
        }
        s.put_resource(
            &id,
            &settings,
            initial_keys(&ACCOUNTS, &format!("k{i}")),
            None,
            &audit("/", "put"),
        )
        .await
        .unwrap();
    }
    let summary = |e: &rekey_store::IndexedResource| {
        let mut slots: Vec<_> = e
            .slots
            .iter()
            .map(|k| {
                (
                    k.slot.name,
                    k.generation,
                    k.digest,
                    k.secret.as_ref().map(|s| s.expose().to_string()),
                )
            })
            .collect();
        slots.sort();
        let spec = &e.resource.spec;
        (
            e.resource.internal_id,
            e.resource.id.to_string(),
            slots,
            spec.location.clone(),
            spec.key_auth_enabled(),
            spec.settings
                .get("x-rekey-upstream")
                .cloned()
                .map(|v| v.to_string()),
        )
    };
    let mut all: Vec<_> = s
        .index_entries(None)
        .await
        .unwrap()
        .iter()
        .map(summary)
        .collect();
    let mut streamed = Vec::new();
    s.each_index_entry(&mut |e| streamed.push(summary(&e)))
        .await
        .unwrap();
    assert_eq!(streamed.len(), 1_001, "every resource once");
    all.sort();
    streamed.sort();
    assert_eq!(streamed, all);
}

async fn the_change_feed_lists_changed_resources_in_commit_order(t: TestStore) {
    let s = &*t.store;
    assert_eq!(s.latest_change().await.unwrap(), 0);
    assert_eq!(s.changes_since(0).await.unwrap(), (0, vec![]));
    let (sub, group) = group_fixture(s).await;
    assert_eq!(
        s.latest_change().await.unwrap(),
        0,
        "subscriptions and groups are not in the feed"
    );

    let a = resource_id(&sub, &group, &ACCOUNTS, "acct-a");
    let b = resource_id(&sub, &group, &ACCOUNTS, "acct-b");
    let (ra, _) = s
        .put_resource(
            &a,
            &spec("x"),
            initial_keys(&ACCOUNTS, "a"),
            None,
            &audit("/", "put"),
        )
        .await
        .unwrap();
    let after_a = s.latest_change().await.unwrap();
    assert!(after_a > 0);
    let (rb, _) = s
        .put_resource(
            &b,
            &spec("x"),
            initial_keys(&ACCOUNTS, "b"),
            None,
            &audit("/", "put"),
        )
        .await
        .unwrap();
    s.regenerate(
        &a,
        initial_keys(&ACCOUNTS, "a2"),
        None,
        &audit("/", "regen"),
    )
    .await
    .unwrap();
    let latest = s.latest_change().await.unwrap();
    assert!(latest > after_a);

    let (seen, ids) = s.changes_since(0).await.unwrap();
    assert_eq!(seen, latest);
    assert_eq!(
        ids,
        [ra.internal_id, rb.internal_id],
        "each resource once, in order of first change"
    );
    let (_, ids) = s.changes_since(after_a).await.unwrap();
    assert_eq!(ids, [rb.internal_id, ra.internal_id]);
    assert_eq!(s.changes_since(latest).await.unwrap(), (latest, vec![]));

    s.delete_group(&sub, &group, &audit("/", "delete"))
        .await
        .unwrap();
    let (after_delete, ids) = s.changes_since(latest).await.unwrap();
    assert!(after_delete > latest);
    assert_eq!(
        ids.len(),
        2,
        "deleting a group reports each of its resources"
    );
    assert!(ids.contains(&ra.internal_id) && ids.contains(&rb.internal_id));
}

async fn key_uses_record_the_latest_use_of_the_current_key_only(t: TestStore) {
    let s = &*t.store;
    let id = resource_fixture(s).await;
    let resource = s.resource(&id).await.unwrap();
    s.record_key_uses(&[]).await.unwrap();
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let uses = |slot: &'static str, generation: i64, at: OffsetDateTime| KeyUse {
        resource: resource.internal_id,
        slot,
        generation,
        at,
    };
    s.record_key_uses(&[uses("key1", 1, t0), uses("key2", 1, t0)])
        .await
        .unwrap();
    s.record_key_uses(&[uses("key1", 1, t0 - Duration::minutes(5))])
        .await
        .unwrap();
    let (_, slots) = s.keys(&id).await.unwrap();
    assert_eq!(
        slots[0].last_used,
        Some(t0),
        "an older use does not move the last use back"
    );
    // One batch may hold a slot twice (a node's uses noted before and after a change of the
    // resource): the newest counts, wherever it stands in the batch.
    s.record_key_uses(&[
        uses("key1", 1, t0 + Duration::minutes(3)),
        uses("key2", 1, t0 + Duration::minutes(1)),
        uses("key1", 1, t0 + Duration::minutes(1)),
    ])
    .await
    .unwrap();
    let (_, slots) = s.keys(&id).await.unwrap();
    assert_eq!(slots[0].last_used, Some(t0 + Duration::minutes(3)));
    assert_eq!(slots[1].last_used, Some(t0 + Duration::minutes(1)));

    let key2 = ACCOUNTS.slot("key2").unwrap();
    s.regenerate(&id, vec![(key2, secret("new"))], None, &audit("/", "regen"))
        .await
        .unwrap();
    let (_, slots) = s.keys(&id).await.unwrap();
    assert_eq!(slots[1].last_used, None, "a new key has not been used");
    s.record_key_uses(&[uses("key2", 1, t0 + Duration::minutes(1))])
        .await
        .unwrap();
    let (_, slots) = s.keys(&id).await.unwrap();
    assert_eq!(
        slots[1].last_used, None,
        "a use of the replaced key is ignored"
    );
    s.record_key_uses(&[uses("key2", 2, t0 + Duration::minutes(2))])
        .await
        .unwrap();
    let (_, slots) = s.keys(&id).await.unwrap();
    assert_eq!(slots[1].last_used, Some(t0 + Duration::minutes(2)));
}

async fn signing_keys_rotate_newest_first_and_retire_the_previous(t: TestStore) {
    let s = &*t.store;
    assert!(s.signing_keys().await.unwrap().is_empty());
    let key = |kid: &str, at: OffsetDateTime| SigningKey {
        kid: kid.into(),
        pkcs8: zeroize::Zeroizing::new(format!("private {kid}").into_bytes()),
        public_key: format!("public {kid}").into_bytes(),
        created_at: at,
        retired_at: None,
    };
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    s.rotate_signing_key(&key("one", t0), &audit("/", "rotate"))
        .await
        .unwrap();
    s.rotate_signing_key(
        &key("two", t0 + Duration::seconds(1)),
        &audit("/", "rotate"),
    )
    .await
    .unwrap();
    let keys = s.signing_keys().await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["two", "one"]);
    assert!(keys[0].retired_at.is_none());
    assert!(keys[1].retired_at.is_some());
    assert_eq!(
        &keys[0].pkcs8[..],
        b"private two",
        "the private key comes back decrypted"
    );
    assert_eq!(keys[1].public_key, b"public one");
    assert_eq!(keys[0].created_at, t0 + Duration::seconds(1));
}

async fn operations_are_recorded_with_their_change_and_scoped_to_a_subscription(t: TestStore) {
    let s = &*t.store;
    let (sub, group) = group_fixture(s).await;
    let id = resource_id(&sub, &group, &ACCOUNTS, "acct-1");
    let started = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let created = Operation::succeeded(&id, "westeurope", started);
    s.put_resource(
        &id,
        &spec("westeurope"),
        initial_keys(&ACCOUNTS, "k"),
        Some(&created),
        &audit("/", "put"),
    )
    .await
    .unwrap();
    let regenerated = Operation::succeeded(&id, "westeurope", started);
    s.regenerate(
        &id,
        initial_keys(&ACCOUNTS, "k2"),
        Some(&regenerated),
        &audit("/", "regen"),
    )
    .await
    .unwrap();
    let deleted = Operation::succeeded(&id, "westeurope", started);
    s.delete_resource(&id, Some(&deleted), &audit("/", "delete"))
        .await
        .unwrap();
    let not_deleted = Operation::succeeded(&id, "westeurope", started);
    assert!(!s
        .delete_resource(&id, Some(&not_deleted), &audit("/", "delete"))
        .await
        .unwrap());

    for op in [&created, &regenerated, &deleted] {
        let stored = s.operation(&sub, &op.id).await.unwrap().unwrap();
        assert_eq!(stored.status, "Succeeded");
        assert_eq!(stored.namespace, "Microsoft.CognitiveServices");
        assert_eq!(stored.resource_id, id.to_string());
        assert_eq!(stored.location, "westeurope");
        assert_eq!(stored.started_at, started);
    }
    assert!(
        s.operation(&sub, &not_deleted.id).await.unwrap().is_none(),
        "a delete of nothing records no operation"
    );
    let other = SubscriptionId::random();
    assert!(
        s.operation(&other, &created.id).await.unwrap().is_none(),
        "another subscription's operation is not found"
    );
}

async fn assignments_are_idempotent_and_refuse_a_changed_or_duplicate_grant(t: TestStore) {
    let s = &*t.store;
    let (sub, group) = group_fixture(s).await;
    let scope = format!("/subscriptions/{sub}/resourceGroups/{group}");
    let (role, other_role) = (Uuid::new_v4(), Uuid::new_v4());
    let alice = principal("alice");
    s.create_principal(&alice, [1; 32], &audit("/", "create"))
        .await
        .unwrap();

    let missing = assignment(
        &format!("/subscriptions/{sub}/resourceGroups/nowhere"),
        role,
        alice.id,
    );
    let err = s
        .put_assignment(&missing, &audit("/", "assign"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ResourceGroupNotFound(_)), "{err}");

    let grant = assignment(&scope, role, alice.id);
    let (stored, written) = s
        .put_assignment(&grant, &audit("/", "assign"))
        .await
        .unwrap();
    assert_eq!(written, Written::Created);
    assert_eq!(stored.id, grant.id);
    // The same assignment again, its scope spelt in another case, is left as it is.
    let again = RoleAssignment {
        scope: format!("/subscriptions/{sub}/resourceGroups/RG-ONE"),
        ..grant.clone()
    };
    let (stored, written) = s
        .put_assignment(&again, &audit("/", "assign"))
        .await
        .unwrap();
    assert_eq!(written, Written::Updated);
    assert_eq!(
        stored.scope, scope,
        "the stored assignment is returned unchanged"
    );

    let changed_role = RoleAssignment {
        role_id: other_role,
        ..grant.clone()
    };
    let err = s
        .put_assignment(&changed_role, &audit("/", "assign"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AssignmentUpdateNotPermitted(id) if id == grant.id),
        "{err}"
    );
    let moved = RoleAssignment {
        scope: format!("/subscriptions/{sub}"),
        ..grant.clone()
    };
    let err = s
        .put_assignment(&moved, &audit("/", "assign"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AssignmentExists(id) if id == grant.id),
        "{err}"
    );
    let duplicate = assignment(&scope, role, alice.id);
    let err = s
        .put_assignment(&duplicate, &audit("/", "assign"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AssignmentExists(id) if id == grant.id),
        "{err}"
    );
    assert!(s.assignment(&duplicate.id).await.unwrap().is_none());

    let wider = assignment(&format!("/subscriptions/{sub}"), other_role, alice.id);
    s.put_assignment(&wider, &audit("/", "assign"))
        .await
        .unwrap();
    assert_eq!(
        s.assignment(&grant.id).await.unwrap().unwrap().role_id,
        role
    );
    assert_eq!(s.assignments_of(&alice.id).await.unwrap().len(), 2);
    assert!(s.assignments_of(&Uuid::new_v4()).await.unwrap().is_empty());
    let ids: Vec<Uuid> = s
        .list_assignments()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&grant.id) && ids.contains(&wider.id));

    let deleted = s
        .delete_assignment(&grant.id, &audit("/", "unassign"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.id, grant.id);
    assert!(s
        .delete_assignment(&grant.id, &audit("/", "unassign"))
        .await
        .unwrap()
        .is_none());
    assert!(s.assignment(&grant.id).await.unwrap().is_none());
}

async fn assignments_go_with_their_scope(t: TestStore) {
    let s = &*t.store;
    let id = resource_fixture(s).await;
    let group_scope = format!(
        "/subscriptions/{}/resourceGroups/{}",
        id.subscription, id.group
    );
    let sub_scope = format!("/subscriptions/{}", id.subscription);
    let role = Uuid::new_v4();
    let alice = principal("alice");
    s.create_principal(&alice, [1; 32], &audit("/", "create"))
        .await
        .unwrap();
    let on_resource = assignment(&id.to_string(), role, alice.id);
    let on_group = assignment(&group_scope, role, alice.id);
    let on_sub = assignment(&sub_scope, role, alice.id);
    for a in [&on_resource, &on_group, &on_sub] {
        s.put_assignment(a, &audit("/", "assign")).await.unwrap();
    }

    s.delete_resource(&id, None, &audit("/", "delete"))
        .await
        .unwrap();
    assert!(
        s.assignment(&on_resource.id).await.unwrap().is_none(),
        "a deleted resource's assignments go with it"
    );
    assert!(s.assignment(&on_group.id).await.unwrap().is_some());

    // A new resource of the same name does not inherit the old one's grants.
    s.put_resource(
        &id,
        &spec("westeurope"),
        initial_keys(&ACCOUNTS, "k"),
        None,
        &audit("/", "put"),
    )
    .await
    .unwrap();
    s.put_assignment(&on_resource, &audit("/", "assign"))
        .await
        .unwrap();
    s.delete_group(&id.subscription, &id.group, &audit("/", "delete"))
        .await
        .unwrap();
    assert!(s.assignment(&on_resource.id).await.unwrap().is_none());
    assert!(
        s.assignment(&on_group.id).await.unwrap().is_none(),
        "a deleted group's assignments go with it"
    );
    assert!(
        s.assignment(&on_sub.id).await.unwrap().is_some(),
        "assignments above the group stay"
    );
}

async fn audit_records_filter_by_subscription_and_time_oldest_first(t: TestStore) {
    let s = &*t.store;
    let sub = SubscriptionId::random();
    let other = SubscriptionId::random();
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let at = |minutes: i64, scope: &str, action: &str| AuditRecord {
        at: t0 + Duration::minutes(minutes),
        ..audit(scope, action)
    };
    s.append_audit(&at(0, &format!("/subscriptions/{sub}"), "first"))
        .await
        .unwrap();
    s.append_audit(&at(1, &format!("/subscriptions/{other}"), "elsewhere"))
        .await
        .unwrap();
    s.append_audit(&at(
        2,
        &format!("/SUBSCRIPTIONS/{sub}/resourceGroups/rg"),
        "second",
    ))
    .await
    .unwrap();
    s.append_audit(&at(3, "/", "unscoped")).await.unwrap();
    s.append_audit(&at(4, &format!("/subscriptions/{sub}"), "third").with_result("Denied"))
        .await
        .unwrap();

    let records = s
        .audit_records(&sub.to_string().to_uppercase(), t0)
        .await
        .unwrap();
    let actions: Vec<&str> = records.iter().map(|e| e.record.action.as_str()).collect();
    assert_eq!(actions, ["first", "second", "third"]);
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(records[2].record.result, "Denied");
    assert_eq!(records[0].record.at, t0);
    let later: Vec<String> = s
        .audit_records(sub.as_str(), t0 + Duration::minutes(1))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.record.action)
        .collect();
    assert_eq!(later, ["second", "third"]);
    assert_eq!(chain_records(s).await, 5);
}

async fn the_audit_chain_detects_an_edited_record(t: TestStore) {
    let s = &*t.store;
    assert_eq!(chain_records(s).await, 0);
    let id = resource_fixture(s).await;
    s.regenerate(
        &id,
        initial_keys(&ACCOUNTS, "k2"),
        None,
        &audit("/", "regen"),
    )
    .await
    .unwrap();
    s.append_audit(&audit("/", "read")).await.unwrap();
    let records = chain_records(s).await;
    assert_eq!(
        records, 5,
        "subscription, group, resource, regeneration and read each leave one record"
    );

    t.tamper("UPDATE audit_log SET result = 'Failed' WHERE seq = 4")
        .await;
    assert_broken_at(s, 4, 3, "contents").await;
}

async fn the_audit_chain_detects_a_deleted_record(t: TestStore) {
    let s = &*t.store;
    for n in 0..4 {
        s.append_audit(&audit("/", &format!("read {n}")))
            .await
            .unwrap();
    }
    t.tamper("DELETE FROM audit_log WHERE seq = 2").await;
    assert_broken_at(s, 3, 1, "missing").await;
}

/// The audit chain check names record `seq` as the first broken one, after `records_before` intact
/// records, for a reason that mentions `reason`.
async fn assert_broken_at(s: &dyn Store, seq: i64, records_before: u64, reason: &str) {
    match s.verify_audit_chain().await.unwrap() {
        ChainCheck::Broken {
            seq: at,
            records_before: before,
            reason: why,
        } => {
            assert_eq!((at, before), (seq, records_before));
            assert!(why.contains(reason), "{why}");
        }
        intact => panic!("a tampered record must break the chain: {intact:?}"),
    }
}

async fn only_postgres_has_change_notices_to_listen_for(t: TestStore) {
    let s = &*t.store;
    let listener = s.listen().await.unwrap();
    match t.backend {
        Backend::Sqlite => assert!(
            listener.is_none(),
            "embedded SQLite has one writer: nothing to hear"
        ),
        Backend::Postgres => {
            let mut listener = listener.expect("PostgreSQL nodes hear each other's commits");
            let id = resource_fixture(s).await;
            s.regenerate(
                &id,
                initial_keys(&ACCOUNTS, "k2"),
                None,
                &audit("/", "regen"),
            )
            .await
            .unwrap();
            let latest = s.latest_change().await.unwrap();
            let mut heard = 0;
            while heard < latest {
                let notice =
                    tokio::time::timeout(std::time::Duration::from_secs(10), listener.next())
                        .await
                        .expect("a notice arrives within 10 s")
                        .unwrap();
                if let ChangeNotice::Committed(seq) = notice {
                    assert!(seq > heard, "notices follow commit order");
                    heard = seq;
                }
            }
            assert_eq!(heard, latest);
        }
    }
}

async fn usage_counts_from_several_nodes_add_up_and_the_latest_client_wins(t: TestStore) {
    let s = &*t.store;
    let id = resource_fixture(s).await;
    let resource = s.resource(&id).await.unwrap();
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let minute = t0.unix_timestamp() / 60;
    let node = |uses: u64, at: OffsetDateTime, client: &str, retired: u64| SlotUsage {
        resource: resource.internal_id,
        slot: "key1",
        minute,
        uses,
        last_at: Some(at),
        last_client: Some(client.into()),
        retired,
        retired_at: (retired > 0).then_some(at),
        retired_client: (retired > 0).then(|| client.to_string()),
    };
    // Two nodes flush the same minute, the later use first.
    s.record_usage(&[node(3, t0, "192.0.2.2", 0)])
        .await
        .unwrap();
    s.record_usage(&[node(4, t0 - Duration::seconds(5), "192.0.2.1", 2)])
        .await
        .unwrap();
    let rows = s.usage(resource.internal_id, minute).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!((row.uses, row.retired), (7, 2));
    assert_eq!(row.last_at, Some(t0));
    assert_eq!(
        row.last_client.as_deref(),
        Some("192.0.2.2"),
        "the later use's client"
    );
    assert_eq!(row.retired_client.as_deref(), Some("192.0.2.1"));
    // Pruning drops what is older than the cut.
    s.prune_rotation(minute + 1, t0 - Duration::days(1), t0 - Duration::days(1))
        .await
        .unwrap();
    assert!(s.usage(resource.internal_id, 0).await.unwrap().is_empty());
}

async fn a_regeneration_retires_the_old_digest_and_a_taken_token_changes_nothing(t: TestStore) {
    let s = &*t.store;
    let id = resource_fixture(s).await;
    let key1 = ACCOUNTS.slot("key1").unwrap();
    let (resource, before) = s.keys(&id).await.unwrap();
    let old = before[0].secret.expose().to_string();
    let answer = |_: &rekey_core::Resource, keys: &[rekey_core::KeySlotState]| {
        keys[0].secret.expose().as_bytes().to_vec()
    };
    let remember = || Remember {
        principal: "tester",
        kind: "idempotency-key",
        token: "once",
        fingerprint: [7; 32],
        expired_before: OffsetDateTime::now_utc() - Duration::hours(24),
        answer: &answer,
    };
    let options = RegenerateOptions {
        grace: Some(Duration::seconds(60)),
        remember: Some(remember()),
    };
    let (_, after) = s
        .regenerate_with(
            &id,
            vec![(key1, secret("new-1"))],
            None,
            &audit("/", "r"),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(after[0].secret.expose(), "new-1");

    let controls = s
        .slot_controls(Some(&[resource.internal_id]))
        .await
        .unwrap();
    assert_eq!(controls.retired.len(), 1);
    let retired = &controls.retired[0];
    assert_eq!(
        retired.digest,
        s.key_digest(&old),
        "only the digest is kept"
    );
    assert_eq!((retired.slot.as_str(), retired.generation), ("key1", 1));
    assert!(retired.grace_until.is_some() && retired.secret.is_none());

    let remembered = s
        .remembered(
            "tester",
            "idempotency-key",
            "once",
            OffsetDateTime::UNIX_EPOCH,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&remembered.answer[..], b"new-1", "sealed and opened again");

    // The same token again: refused, and the key is not rotated a second time.
    let again = RegenerateOptions {
        grace: None,
        remember: Some(remember()),
    };
    let refused = s
        .regenerate_with(
            &id,
            vec![(key1, secret("new-2"))],
            None,
            &audit("/", "r"),
            &again,
        )
        .await;
    assert!(matches!(refused, Err(StoreError::IdempotencyTaken)));
    let (_, now) = s.keys(&id).await.unwrap();
    assert_eq!(now[0].secret.expose(), "new-1");
    let controls = s
        .slot_controls(Some(&[resource.internal_id]))
        .await
        .unwrap();
    assert_eq!(
        controls.retired.len(),
        1,
        "nothing retired by the refused one"
    );
}

fn event_subscription(scope: &str, name: &str, state: &str) -> EventSubscription {
    EventSubscription {
        id: Uuid::new_v4(),
        subscription: scope.split('/').nth(2).unwrap().to_string(),
        scope: scope.to_string(),
        name: name.to_string(),
        endpoint_url: "http://127.0.0.1:9/hook".into(),
        included_event_types: None,
        delivery_schema: "EventGridSchema".into(),
        max_attempts: 30,
        ttl_minutes: 1440,
        provisioning_state: state.into(),
        created_at: OffsetDateTime::now_utc(),
        updated_at: OffsetDateTime::now_utc(),
    }
}

async fn a_regeneration_queues_one_delivery_per_validated_subscription_held_by_one_claimer(
    t: TestStore,
) {
    let s = &*t.store;
    let id = resource_fixture(s).await;
    let scope = id.to_string();
    let lease = std::time::Duration::from_secs(60);
    let put = |sub: EventSubscription| async move {
        s.put_event_subscription(&sub, &secret("signing"), &audit(&sub.scope, "put"))
            .await
            .unwrap()
            .0
    };
    let target = put(event_subscription(&scope, "hook", events::PROVISIONED)).await;
    put(event_subscription(
        &scope,
        "unproven",
        events::AWAITING_MANUAL_ACTION,
    ))
    .await;
    let group_scope = format!("/subscriptions/{}/resourceGroups/other", id.subscription);
    put(event_subscription(
        &group_scope,
        "elsewhere",
        events::PROVISIONED,
    ))
    .await;

    let key1 = ACCOUNTS.slot("key1").unwrap();
    let action = "Microsoft.CognitiveServices/accounts/regenerateKey/action";
    s.regenerate(
        &id,
        vec![(key1, secret("new-key1"))],
        None,
        &audit(&scope, action),
    )
    .await
    .unwrap();
    // A change that fails writes no event.
    let missing = resource_id(&id.subscription, &id.group, &ACCOUNTS, "nope");
    assert!(s
        .regenerate(
            &missing,
            vec![(key1, secret("x"))],
            None,
            &audit(&scope, action)
        )
        .await
        .is_err());

    let claimed = s.claim_deliveries("a", lease, 10).await.unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "only the validated subscription at or above the resource"
    );
    let d = &claimed[0];
    assert_eq!(d.target.id, target.id);
    assert_eq!(d.secret.expose(), "signing");
    assert_eq!(d.attempts, 0);
    assert_eq!(d.event.event_type, events::RESOURCE_ACTION_SUCCESS);
    assert_eq!(d.event.subject, scope);
    assert_eq!(d.event.data["operationName"], action);
    assert!(
        !d.event.data.to_string().contains("new-key1"),
        "no key in an event"
    );

    assert!(
        s.claim_deliveries("b", lease, 10).await.unwrap().is_empty(),
        "held by a"
    );
    // Only the holder's outcome counts.
    let delivered = DeliveryOutcome::Delivered;
    s.finish_delivery(&d.event.id, &d.target.id, "b", &delivered)
        .await
        .unwrap();
    assert_eq!(s.outbox_depth().await.unwrap(), 1);
    let retry = DeliveryOutcome::Retry {
        at: OffsetDateTime::now_utc() - Duration::seconds(1),
        error: "503".into(),
    };
    s.finish_delivery(&d.event.id, &d.target.id, "a", &retry)
        .await
        .unwrap();
    let again = s.claim_deliveries("b", lease, 10).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    let dead = DeliveryOutcome::Dead {
        reason: "MaxDeliveryAttemptsExceeded".into(),
        error: "gone".into(),
    };
    s.finish_delivery(&d.event.id, &d.target.id, "b", &dead)
        .await
        .unwrap();
    assert_eq!(s.outbox_depth().await.unwrap(), 0);
    let letters = s.dead_letters(&target.id).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (
            letters[0].attempts,
            letters[0].reason.as_str(),
            letters[0].last_error.as_str()
        ),
        (2, "MaxDeliveryAttemptsExceeded", "gone")
    );
    assert!(s.claim_deliveries("c", lease, 10).await.unwrap().is_empty());
}

async fn a_key_past_its_maximum_age_is_reported_once_per_generation(t: TestStore) {
    let s = &*t.store;
    let id = resource_fixture(s).await;
    let sub_scope = format!("/subscriptions/{}", id.subscription);
    let ages = EventSubscription {
        included_event_types: Some(vec![events::KEY_AGE_EXCEEDED.into()]),
        ..event_subscription(&sub_scope, "ages", events::PROVISIONED)
    };
    s.put_event_subscription(&ages, &secret("signing"), &audit(&sub_scope, "put"))
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    assert!(
        s.sweep_key_ages(now + Duration::days(400))
            .await
            .unwrap()
            .is_empty(),
        "no policy, no age limit"
    );
    s.put_key_policy(&id.subscription, 30, &audit(&sub_scope, "policy"))
        .await
        .unwrap();
    assert_eq!(s.key_policy(&id.subscription).await.unwrap(), Some(30));
    assert!(s
        .sweep_key_ages(now + Duration::days(29))
        .await
        .unwrap()
        .is_empty());
    let later = now + Duration::days(31);
    let overdue = s.sweep_key_ages(later).await.unwrap();
    let mut slots: Vec<&str> = overdue.iter().map(|o| o.slot.as_str()).collect();
    slots.sort();
    assert_eq!(slots, ["key1", "key2"]);
    assert!(
        s.sweep_key_ages(later).await.unwrap().is_empty(),
        "once per generation"
    );
    let key1 = ACCOUNTS.slot("key1").unwrap();
    s.regenerate(
        &id,
        vec![(key1, secret("new"))],
        None,
        &audit(&id.to_string(), "regen"),
    )
    .await
    .unwrap();
    let overdue = s.sweep_key_ages(later + Duration::days(31)).await.unwrap();
    assert_eq!(
        overdue.len(),
        1,
        "the new generation is reported when it too grows old"
    );
    assert_eq!(
        (overdue[0].slot.as_str(), overdue[0].generation),
        ("key1", 2)
    );
    let claimed = s
        .claim_deliveries("a", std::time::Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(claimed
        .iter()
        .all(|d| d.event.event_type == events::KEY_AGE_EXCEEDED));
}

async fn only_postgres_keeps_a_node_table_where_expulsion_and_renewal_exclude_each_other(
    t: TestStore,
) {
    let s = &*t.store;
    let Some(table) = s.node_table() else {
        assert_eq!(
            t.backend,
            Backend::Sqlite,
            "PostgreSQL nodes keep a node table"
        );
        return;
    };
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(table.join(a, 0).await.unwrap(), "nothing committed yet");
    let id = resource_fixture(s).await;
    let latest = s.latest_change().await.unwrap();
    assert!(
        !table.join(b, 0).await.unwrap(),
        "a node that has not applied every committed change cannot join"
    );
    assert!(table.join(b, latest).await.unwrap());

    let lagging = table.lagging(b, latest).await.unwrap();
    assert_eq!(lagging.len(), 1);
    let (node, stale_renewal) = lagging[0];
    assert_eq!(node, a, "A has not acknowledged the change");
    assert!(table.renew(a, latest).await.unwrap());
    assert!(
        table.lagging(b, latest).await.unwrap().is_empty(),
        "A acknowledged it"
    );
    assert!(
        !table.expel(a, None, latest).await.unwrap(),
        "a node that acknowledged the position is not expelled for it"
    );

    s.regenerate(
        &id,
        initial_keys(&ACCOUNTS, "second"),
        None,
        &audit("/", "regen"),
    )
    .await
    .unwrap();
    let next = s.latest_change().await.unwrap();
    let (_, renewal) = table.lagging(b, next).await.unwrap()[0];
    assert_ne!(
        renewal, stale_renewal,
        "every renewal has a number of its own"
    );
    assert!(
        !table.expel(a, Some(stale_renewal), next).await.unwrap(),
        "a node that renewed since the number seen is not expelled"
    );
    assert!(table.expel(a, Some(renewal), next).await.unwrap());
    assert!(
        !table.renew(a, next).await.unwrap(),
        "an expelled node cannot renew"
    );
    assert!(
        table.lagging(b, next).await.unwrap().is_empty(),
        "nobody waits for an expelled node"
    );
    assert!(
        table.join(a, next).await.unwrap(),
        "it joins again, caught up"
    );
    assert!(table.renew(a, next).await.unwrap());

    table.leave(a).await.unwrap();
    assert!(
        !table.renew(a, next).await.unwrap(),
        "a node that left is gone"
    );
    assert_eq!(
        table.lagging(a, i64::MAX).await.unwrap().len(),
        1,
        "B remains"
    );
}
