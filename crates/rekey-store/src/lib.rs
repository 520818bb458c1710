//! rekey's storage: the [`Store`] trait every backend implements, the embedded SQLite backend, the
//! PostgreSQL backend for several nodes, migrations, and encryption at rest ([`crypto`]). SQL lives only here; callers speak in
//! `rekey-core` records. Every key change is one transaction that also appends to the change feed,
//! and a call returns only after its commit.
//!
//! The two backends share everything that does not depend on the dialect: `common` reads rows into
//! records, `store_impl` writes the `Store` methods whose SQL both accept once, and each backend file
//! keeps only connecting, locking, notices and the queries that truly differ.

pub mod audit;
mod columns;
mod common;
#[macro_use]
mod store_impl;
pub mod crypto;
#[macro_use]
pub mod rotation;
pub mod events;
mod pg_nodes;
mod postgres;
mod sqlite;

use async_trait::async_trait;
use rekey_core::providers::Slot;
use rekey_core::{
    KeySlotState, Provider, Resource, ResourceGroup, ResourceGroupName, ResourceId, ResourceSpec,
    Secret, Subscription, SubscriptionId,
};
use time::OffsetDateTime;
use uuid::Uuid;

pub use audit::{AuditEntry, AuditRecord, ChainCheck};
pub use crypto::{MasterKey, Sealer};
pub use events::{
    DeadLetter, Delivery, DeliveryOutcome, EventSubscription, NewEvent, OverdueKey, StoredEvent,
};
pub use postgres::{PgStore, PgStoreOptions};
pub use rotation::{
    RegenerateOptions, Remember, Remembered, RetiredKey, Rotation, SlotControls, SlotRotation,
    SlotUsage, UsageRow,
};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("subscription '{0}' not found")]
    SubscriptionNotFound(SubscriptionId),
    #[error("resource group '{0}' not found")]
    ResourceGroupNotFound(String),
    #[error("resource '{0}' not found")]
    ResourceNotFound(String),
    /// The database could not be reached or could not serve now (connection lost or refused, pool
    /// exhausted, server shutting down, a transaction that lost a conflict): retrying later can work.
    #[error("the database is unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Backend(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database file's permissions could not be set.
    #[error("database file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A role assignment's id was written again with another principal, role or scope: an
    /// assignment's contents cannot change, only be deleted and made anew.
    #[error("role assignment '{0}' exists with another principal, role or scope")]
    AssignmentUpdateNotPermitted(Uuid),
    /// The principal already holds the role at the scope, under the assignment with this id.
    #[error("the principal already holds the role at the scope as assignment '{0}'")]
    AssignmentExists(Uuid),
    /// A regeneration's idempotency token is held by an answer already committed.
    #[error("the idempotency token already has a committed answer")]
    IdempotencyTaken,
}

impl StoreError {
    /// Whether the failure is the database's availability rather than the request or the data.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if unavailable(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Backend(e)
        }
    }
}

/// Connection-class failures, and PostgreSQL's SQLSTATEs that mean "not now" rather than "never":
/// class 08 (connection exception), 53 (insufficient resources), 57P01-57P03 (shutting down,
/// crashed, starting up), 40001/40P01 (lost a serialization or deadlock conflict), 55P03 (lock not
/// available). SQLite's busy and locked (5, 6) are the same kind of failure.
fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(
                    &*code,
                    "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "55P03" | "5" | "6"
                )
        }),
        _ => false,
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a node hears about changes that other nodes commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeNotice {
    /// Changes up to this change-feed sequence number have committed.
    Committed(i64),
    /// The listening connection was lost and is back: notices sent meanwhile are lost, so the
    /// listener must read the feed to catch up.
    Resumed,
    /// A node renewed its lease in the [`NodeTable`], acknowledging the feed position its index has
    /// applied: a regeneration waiting for that acknowledgement may look again.
    Acknowledged,
}

/// A subscription to the change feed's notices. Notices are hints that make catching up prompt;
/// the feed's sequence numbers stay the truth, so a lost notice delays a catch-up but never hides a
/// change from one.
#[async_trait]
pub trait ChangeListener: Send {
    /// Waits for the next notice. An error means the connection is down now; calling again retries.
    async fn next(&mut self) -> Result<ChangeNotice>;
}

/// The table of nodes that serve data-plane checks from an index following the change feed (with
/// PostgreSQL): each node's acknowledged feed position and its lease renewals. A node's lease is
/// kept on its own clock (it trusts its index for a while after each renewal it sent succeeded);
/// the table only numbers the renewals, so other nodes can tell one that stopped renewing. What the
/// numbers mean, and the timing that makes expelling a silent node safe, is the server's
/// (`dataplane/membership.rs`).
#[async_trait]
pub trait NodeTable: Send + Sync {
    /// Joins, or joins again after being expelled, having applied the feed up to `applied`: only if
    /// no change committed after `applied` (checked under the lock that orders the feed's commits,
    /// so no change can commit meanwhile). `false` when the feed has moved on: catch up and try
    /// again. Joining also forgets the rows of expelled nodes.
    async fn join(&self, node: Uuid, applied: i64) -> Result<bool>;
    /// Renews `node`'s lease and acknowledges `applied`, notifying every listening node. `false`
    /// when the node was expelled (or forgotten): it must stop trusting its index, catch up and
    /// join again.
    async fn renew(&self, node: Uuid, applied: i64) -> Result<bool>;
    /// The nodes other than `except`, not expelled, that have not acknowledged `position`, each with
    /// the number of its last renewal (numbers are never reused).
    async fn lagging(&self, except: Uuid, position: i64) -> Result<Vec<(Uuid, i64)>>;
    /// Expels `node` unless it acknowledged `position` meanwhile or, with `renewal`, renewed after
    /// that renewal; `true` when it was expelled. A renewal racing this waits for it (or it for the
    /// renewal) on the row's lock, so the two cannot both succeed.
    async fn expel(&self, node: Uuid, renewal: Option<i64>, position: i64) -> Result<bool>;
    /// Removes `node`'s row, on a graceful shutdown: the others need not wait for it to lapse.
    async fn leave(&self, node: Uuid) -> Result<()>;
}

/// Someone who may call the management API: a service token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: Uuid,
    pub display_name: String,
    /// The bootstrap owner: Owner of every scope.
    pub is_owner: bool,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
}

impl Principal {
    /// Whether the token still opens the API at `now`.
    pub fn active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }
}

/// A role assignment in Azure's shape: `principal` holds `role_id` over `scope`.
#[derive(Debug, Clone)]
pub struct RoleAssignment {
    pub id: Uuid,
    pub scope: String,
    pub role_id: Uuid,
    pub principal_id: Uuid,
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

/// The scope a role assignment names: a subscription, a resource group or a resource. Assignments
/// live exactly as long as their scope: a write checks the scope in its own transaction, and a
/// deletion of the scope deletes them in its transaction.
#[derive(Debug, Clone)]
enum AssignmentScope {
    Subscription(SubscriptionId),
    Group(SubscriptionId, ResourceGroupName),
    Resource(ResourceId),
}

impl AssignmentScope {
    /// Reads `/subscriptions/{s}`, `…/resourceGroups/{g}` or a resource id (fixed segments in any
    /// case); `None` for anything else.
    fn parse(scope: &str) -> Option<Self> {
        let rest = scope.trim_end_matches('/');
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["", subs, sub] if subs.eq_ignore_ascii_case("subscriptions") => {
                SubscriptionId::parse(sub).ok().map(Self::Subscription)
            }
            ["", subs, sub, groups, group]
                if subs.eq_ignore_ascii_case("subscriptions")
                    && groups.eq_ignore_ascii_case("resourceGroups") =>
            {
                Some(Self::Group(
                    SubscriptionId::parse(sub).ok()?,
                    ResourceGroupName::parse(group).ok()?,
                ))
            }
            _ => ResourceId::parse(rest).ok().map(Self::Resource),
        }
    }
}

/// The stored form of an assignment's scope (what `role_assignments.scope_key` holds): ARM ids are
/// compared without regard to letter case.
fn scope_key(scope: &str) -> String {
    scope.trim_end_matches('/').to_lowercase()
}

/// The ARM id of a resource group, the scope its assignments name.
fn group_scope(sub: &SubscriptionId, name: &ResourceGroupName) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{name}")
}

/// Whether writing `new` over the stored assignment with the same id is allowed: only when it says
/// the same thing (ARM refuses to change an assignment's principal, role or scope).
fn check_rewrite(stored: &RoleAssignment, new: &RoleAssignment) -> Result<()> {
    if scope_key(&stored.scope) != scope_key(&new.scope) {
        return Err(StoreError::AssignmentExists(stored.id));
    }
    if stored.role_id != new.role_id || stored.principal_id != new.principal_id {
        return Err(StoreError::AssignmentUpdateNotPermitted(stored.id));
    }
    Ok(())
}

/// What the first start creates: the tenant, the default subscription and the owner principal.
#[derive(Debug, Clone)]
pub struct BootstrapRecord {
    pub tenant_id: Uuid,
    pub subscription_id: SubscriptionId,
    pub principal_id: Uuid,
}

/// A long-running operation's record. rekey completes the work before answering, so operations are
/// stored already `Succeeded`, in the transaction of the change they report.
#[derive(Debug, Clone)]
pub struct Operation {
    pub id: Uuid,
    pub subscription: SubscriptionId,
    /// The namespace whose `operationsStatus` path serves it (`Microsoft.DocumentDB`).
    pub namespace: String,
    pub location: String,
    /// The ARM id of the resource the operation changed.
    pub resource_id: String,
    pub status: String,
    pub started_at: OffsetDateTime,
    pub ended_at: OffsetDateTime,
}

impl Operation {
    /// A finished operation on `resource`, with a fresh random id.
    pub fn succeeded(resource: &ResourceId, location: &str, started_at: OffsetDateTime) -> Self {
        Self {
            id: Uuid::new_v4(),
            subscription: resource.subscription.clone(),
            namespace: resource.provider.namespace.to_string(),
            location: location.to_string(),
            resource_id: resource.to_string(),
            status: "Succeeded".into(),
            started_at,
            ended_at: OffsetDateTime::now_utc(),
        }
    }
}

/// One key slot as the data plane's index needs it: the keyed digest of its current key, and the
/// plain key only for types whose clients sign requests with it.
#[derive(Debug, Clone)]
pub struct IndexedSlot {
    pub slot: &'static Slot,
    pub generation: i64,
    pub digest: [u8; 32],
    pub secret: Option<Secret>,
}

/// A resource with its slots, for the data plane's index.
#[derive(Debug, Clone)]
pub struct IndexedResource {
    pub resource: Resource,
    pub slots: Vec<IndexedSlot>,
}

/// A resource to create with its first keys, for the stores' `create_resources` (loading many at once).
pub struct NewResource {
    pub id: ResourceId,
    pub spec: ResourceSpec,
    pub keys: Vec<(&'static Slot, Secret)>,
}

/// A data-plane use of a key, to be recorded as the slot's last use.
#[derive(Debug, Clone, Copy)]
pub struct KeyUse {
    pub resource: Uuid,
    pub slot: &'static str,
    pub generation: i64,
    pub at: OffsetDateTime,
}

/// A key that signs access tokens. `pkcs8` is the private key, decrypted; it never leaves the process.
pub struct SigningKey {
    pub kid: String,
    pub pkcs8: zeroize::Zeroizing<Vec<u8>>,
    pub public_key: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// The outcome of a create-or-replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
}

#[async_trait]
pub trait Store: Rotation + Send + Sync + 'static {
    /// The bootstrap record, if a node already made it.
    async fn bootstrap(&self) -> Result<Option<BootstrapRecord>>;

    /// Creates the bootstrap record with an owner whose token digests to `token_digest`, unless one
    /// exists; returns the record in force and whether this call made it.
    async fn init_bootstrap(
        &self,
        proposed: BootstrapRecord,
        token_digest: [u8; 32],
    ) -> Result<(BootstrapRecord, bool)>;

    /// The principal whose token digests to `token_digest`, active or not.
    async fn principal_by_token(&self, token_digest: &[u8; 32]) -> Result<Option<Principal>>;
    async fn principal(&self, id: &Uuid) -> Result<Option<Principal>>;
    async fn create_principal(
        &self,
        principal: &Principal,
        token_digest: [u8; 32],
        audit: &AuditRecord,
    ) -> Result<()>;
    async fn list_principals(&self) -> Result<Vec<Principal>>;
    /// Revokes at once; false if there is no such principal.
    async fn revoke_principal(&self, id: &Uuid, audit: &AuditRecord) -> Result<bool>;

    /// Creates the assignment; an identical one with the same id is left as it is and returned.
    /// Fails when the scope does not exist, when the id holds a different assignment
    /// ([`StoreError::AssignmentUpdateNotPermitted`], or [`StoreError::AssignmentExists`] at
    /// another scope), or when the principal already holds the role at the scope under another id
    /// ([`StoreError::AssignmentExists`]).
    async fn put_assignment(
        &self,
        assignment: &RoleAssignment,
        audit: &AuditRecord,
    ) -> Result<(RoleAssignment, Written)>;
    async fn assignment(&self, id: &Uuid) -> Result<Option<RoleAssignment>>;
    async fn delete_assignment(
        &self,
        id: &Uuid,
        audit: &AuditRecord,
    ) -> Result<Option<RoleAssignment>>;
    async fn assignments_of(&self, principal: &Uuid) -> Result<Vec<RoleAssignment>>;
    async fn list_assignments(&self) -> Result<Vec<RoleAssignment>>;

    /// Appends a record that describes no stored change (a key read, a refusal).
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;
    /// Records of one subscription at or after `since`, oldest first.
    async fn audit_records(
        &self,
        subscription: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<AuditEntry>>;
    /// Recomputes the whole chain.
    async fn verify_audit_chain(&self) -> Result<ChainCheck>;

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>>;
    async fn subscription(&self, id: &SubscriptionId) -> Result<Subscription>;
    async fn put_subscription(
        &self,
        id: &SubscriptionId,
        display_name: &str,
        audit: &AuditRecord,
    ) -> Result<(Subscription, Written)>;

    async fn put_group(
        &self,
        group: &ResourceGroup,
        audit: &AuditRecord,
    ) -> Result<(ResourceGroup, Written)>;
    async fn group(&self, sub: &SubscriptionId, name: &ResourceGroupName) -> Result<ResourceGroup>;
    async fn list_groups(&self, sub: &SubscriptionId) -> Result<Vec<ResourceGroup>>;
    /// Deletes the group, its resources and their keys, and every role assignment at or below the
    /// group; false if it did not exist.
    async fn delete_group(
        &self,
        sub: &SubscriptionId,
        name: &ResourceGroupName,
        audit: &AuditRecord,
    ) -> Result<bool>;

    /// Creates the resource with `initial_keys` (one per slot), or replaces an existing one's spec,
    /// keeping its keys.
    async fn put_resource(
        &self,
        id: &ResourceId,
        spec: &ResourceSpec,
        initial_keys: Vec<(&'static Slot, Secret)>,
        operation: Option<&Operation>,
        audit: &AuditRecord,
    ) -> Result<(Resource, Written)>;
    async fn update_resource(
        &self,
        id: &ResourceId,
        spec: &ResourceSpec,
        audit: &AuditRecord,
    ) -> Result<Resource>;
    async fn resource(&self, id: &ResourceId) -> Result<Resource>;
    async fn list_resources(
        &self,
        sub: &SubscriptionId,
        group: Option<&ResourceGroupName>,
        provider: &'static Provider,
    ) -> Result<Vec<Resource>>;
    /// Deletes the resource, its keys and its role assignments; false if it did not exist (and then
    /// no operation is recorded).
    async fn delete_resource(
        &self,
        id: &ResourceId,
        operation: Option<&Operation>,
        audit: &AuditRecord,
    ) -> Result<bool>;

    async fn keys(&self, id: &ResourceId) -> Result<(Resource, Vec<KeySlotState>)>;
    /// Replaces the named slots' keys in one transaction; returns every slot as committed.
    async fn regenerate(
        &self,
        id: &ResourceId,
        new_keys: Vec<(&'static Slot, Secret)>,
        operation: Option<&Operation>,
        audit: &AuditRecord,
    ) -> Result<(Resource, Vec<KeySlotState>)> {
        self.regenerate_with(
            id,
            new_keys,
            operation,
            audit,
            &RegenerateOptions::default(),
        )
        .await
    }

    /// [`Store::regenerate`], keeping each replaced key as retired (by digest) and, as `options`
    /// ask, working for an overlap and the answer remembered, all in the same transaction. Fails
    /// with [`StoreError::IdempotencyTaken`] (changing nothing) when the token has an answer.
    async fn regenerate_with(
        &self,
        id: &ResourceId,
        new_keys: Vec<(&'static Slot, Secret)>,
        operation: Option<&Operation>,
        audit: &AuditRecord,
        options: &RegenerateOptions<'_>,
    ) -> Result<(Resource, Vec<KeySlotState>)>;

    /// The keyed digest under which a presented key would be indexed.
    fn key_digest(&self, presented: &str) -> [u8; 32];

    /// The index entries of the given resources (all resources when `None`); a deleted resource is
    /// simply absent.
    async fn index_entries(&self, only: Option<&[Uuid]>) -> Result<Vec<IndexedResource>>;
    /// Calls `each` with every resource's index entry, as `index_entries(None)` would return them,
    /// reading a page at a time: a million resources are never all in memory at once.
    async fn each_index_entry(&self, each: &mut (dyn FnMut(IndexedResource) + Send)) -> Result<()>;

    /// The internal id of the resource one of whose keys (current, or replaced and still kept)
    /// digests to `digest`, if any: how a key is looked up before the index has loaded.
    async fn resource_with_key(&self, digest: &[u8; 32]) -> Result<Option<Uuid>>;

    /// The change feed's latest sequence number (0 when empty).
    async fn latest_change(&self) -> Result<i64>;

    /// The change feed's latest sequence number, and the resources changed after `after`.
    async fn changes_since(&self, after: i64) -> Result<(i64, Vec<Uuid>)>;

    /// Records last uses; a use of a key that has since been regenerated is ignored.
    async fn record_key_uses(&self, uses: &[KeyUse]) -> Result<()>;

    /// Token-signing keys, newest first; retired ones included.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>>;
    /// Adds `key` as the active signing key and retires the previous one, in one transaction.
    async fn rotate_signing_key(&self, key: &SigningKey, audit: &AuditRecord) -> Result<()>;

    /// A recorded operation of `sub`; another subscription's operation is not found.
    async fn operation(&self, sub: &SubscriptionId, id: &Uuid) -> Result<Option<Operation>>;

    /// Creates the event subscription (with `secret`, its signing secret, kept only on create) or
    /// replaces the stored one's settings at the same scope and name (keeping its id and secret).
    async fn put_event_subscription(
        &self,
        subscription: &EventSubscription,
        secret: &Secret,
        audit: &AuditRecord,
    ) -> Result<(EventSubscription, Written)>;
    async fn event_subscription(
        &self,
        scope: &str,
        name: &str,
    ) -> Result<Option<EventSubscription>>;
    /// The event subscriptions at exactly `scope`.
    async fn list_event_subscriptions(&self, scope: &str) -> Result<Vec<EventSubscription>>;
    /// Deletes it with its pending deliveries and dead letters; false if it did not exist.
    async fn delete_event_subscription(
        &self,
        scope: &str,
        name: &str,
        audit: &AuditRecord,
    ) -> Result<bool>;

    /// Claims up to `limit` deliveries that are due, for `owner`, until `lease` from now: no other
    /// claimer (on any node) gets them until then or until [`Store::finish_delivery`].
    async fn claim_deliveries(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<Delivery>>;
    /// Records what became of a delivery `owner` claimed (nothing, if its lease was lost meanwhile).
    async fn finish_delivery(
        &self,
        event: &Uuid,
        target: &Uuid,
        owner: &str,
        outcome: &DeliveryOutcome,
    ) -> Result<()>;
    /// The dead letters of an event subscription, oldest first.
    async fn dead_letters(&self, target: &Uuid) -> Result<Vec<DeadLetter>>;
    /// Deliveries not yet made (neither delivered nor dead-lettered).
    async fn outbox_depth(&self) -> Result<i64>;

    /// A subscription's default maximum key age in days, if it has one.
    async fn key_policy(&self, sub: &SubscriptionId) -> Result<Option<i64>>;
    async fn put_key_policy(
        &self,
        sub: &SubscriptionId,
        max_key_age_days: i64,
        audit: &AuditRecord,
    ) -> Result<()>;
    /// Emits `Rekey.KeyAgeExceeded` for every key older than its maximum age at `now` that has not
    /// had one (once per slot and key generation, whichever node sweeps); returns those emitted.
    async fn sweep_key_ages(&self, now: OffsetDateTime) -> Result<Vec<OverdueKey>>;
    /// Key slots whose current key has passed its maximum age (reported by a sweep, not rotated
    /// since), for `rekey_keys_overdue`.
    async fn overdue_keys(&self) -> Result<i64>;

    /// Notices of changes other processes commit, or `None` when this process is the only writer
    /// (embedded SQLite): then every change passes through this process, whose writers catch the
    /// index up before they answer, and there is nothing to listen for.
    async fn listen(&self) -> Result<Option<Box<dyn ChangeListener>>> {
        Ok(None)
    }

    /// The table of nodes following the change feed, or `None` when this process is the only
    /// writer (embedded SQLite): then no other node can hold a stale index.
    fn node_table(&self) -> Option<Box<dyn NodeTable>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_others_are_not() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(StoreError::from(sqlx::Error::Io(io)).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolClosed).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::ColumnNotFound("x".into())).is_unavailable());
    }
}
