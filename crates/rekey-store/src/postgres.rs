//! Owns the PostgreSQL backend, for several stateless `rekeyd` nodes on one database. It keeps the
//! SQLite backend's semantics (the same tables, one transaction per change, the change feed, the
//! hash-chained audit log) where several processes write at once:
//!
//! - Every write that appends to the change feed or the audit log does so last, in [`append_log`],
//!   under one transaction-scoped advisory lock held until commit. The audit chain needs that anyway
//!   (each record hashes its predecessor), and it also makes the feed's sequence numbers follow
//!   commit order: a `BIGSERIAL` alone hands out numbers in the order transactions ask, so a reader
//!   could see seq 8 committed while seq 7 is still open and skip 7 for good. Under the lock the
//!   next writer takes its number only after the previous one's commit is visible (PostgreSQL
//!   releases locks after making a commit visible), so "everything after N" never misses a change,
//!   and catching up needs no re-read window. The price is that log appends and their commits run
//!   one at a time across the cluster, as SQLite's single writer does on one machine; the lock is
//!   taken at the end of each transaction, after its row work, to keep the serialized part short.
//! - Key regenerations and other changes to an existing resource lock its row (`FOR UPDATE`) first,
//!   so concurrent regenerations of one resource on any nodes apply one after another.
//! - The transaction that appends to the feed also sends `NOTIFY rekey_changes, '<last seq>'`;
//!   PostgreSQL delivers it at commit, to every node's [`PgChangeListener`].
//! - Creates that race on another node's create of the same name (or on a deleted parent) are
//!   retried, and then take the update or not-found path, as they would have one at a time.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use rekey_core::providers::{Provider, Slot};
use rekey_core::{
    KeySlotState, Resource, ResourceGroup, ResourceGroupName, ResourceId, ResourceSpec, Secret,
    Subscription, SubscriptionId,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions};
use sqlx::{PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{chain_hash, check_chain, AuditEntry, AuditRecord, ChainCheck};
use crate::columns::{corrupt, new_etag, now_micros, seal_context, to_micros, type_key};
use crate::common::{self, StoredRow};
use crate::crypto::Sealer;
use crate::{
    check_rewrite, group_scope, scope_key, AssignmentScope, BootstrapRecord, ChangeListener,
    ChangeNotice, IndexedResource, KeyUse, Operation, Principal, Result, RoleAssignment,
    SigningKey, Store, StoreError, Written,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel change notices are sent on; the payload is the transaction's last change seq.
const CHANNEL: &str = "rekey_changes";

/// Advisory lock keys (one 64-bit space per database). Arbitrary, fixed, and distinct from the lock
/// sqlx's migrator takes (derived from the database name).
const LOG_LOCK: i64 = 0x7265_6b65_795f_6c67; // "rekey_lg"
const BOOTSTRAP_LOCK: i64 = 0x7265_6b65_795f_6273; // "rekey_bs"

/// How often a write that lost a race with another node's write is tried again.
const ATTEMPTS: usize = 3;

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    /// Connections this node may hold (the change listener holds one more of its own).
    pub max_connections: u32,
    /// How long a call waits for a connection before it fails as unavailable. While the database is
    /// down, management calls answer 503 after this long.
    pub acquire_timeout: Duration,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
    acquire_timeout: Duration,
    sealer: Sealer,
}

/// One change-feed entry to append.
struct Change<'a> {
    resource: Uuid,
    slot: Option<&'a str>,
    change: &'static str,
    at: i64,
}

/// A write that lost a race with a concurrent one and is worth running again from the start: a
/// unique or foreign key violation (another node created the same name, or deleted the parent, between
/// our read and our write), or a serialization failure or deadlock PostgreSQL broke.
fn lost_race(e: &StoreError) -> bool {
    let (StoreError::Backend(sqlx::Error::Database(db))
    | StoreError::Unavailable(sqlx::Error::Database(db))) = e
    else {
        return false;
    };
    matches!(
        db.code().as_deref(),
        Some("23505" | "23503" | "40001" | "40P01")
    )
}

/// Runs `attempt` until it does not lose a race, at most [`ATTEMPTS`] times.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < ATTEMPTS && lost_race(&e) => tries += 1,
            other => return other,
        }
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), waiting up to the acquire timeout for the server, and runs
    /// the migrations (sqlx serializes concurrent migrators with an advisory lock, so nodes may
    /// start together).
    pub async fn connect(url: &str, sealer: Sealer, settings: PgStoreOptions) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("rekeyd");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            options,
            acquire_timeout: settings.acquire_timeout,
            sealer,
        })
    }

    async fn require_subscription(conn: &mut PgConnection, sub: &SubscriptionId) -> Result<()> {
        let found = sqlx::query("SELECT 1 FROM subscriptions WHERE id = $1")
            .bind(sub.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        found
            .map(|_| ())
            .ok_or_else(|| StoreError::SubscriptionNotFound(sub.clone()))
    }

    async fn require_group(
        conn: &mut PgConnection,
        sub: &SubscriptionId,
        group: &ResourceGroupName,
    ) -> Result<()> {
        Self::require_subscription(conn, sub).await?;
        let found = sqlx::query(
            "SELECT 1 FROM resource_groups WHERE subscription_id = $1 AND name_key = $2",
        )
        .bind(sub.as_str())
        .bind(group.key())
        .fetch_optional(&mut *conn)
        .await?;
        found
            .map(|_| ())
            .ok_or_else(|| StoreError::ResourceGroupNotFound(group.to_string()))
    }

    /// The resource, or the most precise not-found: subscription, then group, then resource. With
    /// `lock`, the resource's row stays locked until the transaction ends, so changes to one resource
    /// from any node apply one after another.
    async fn find_resource(
        conn: &mut PgConnection,
        id: &ResourceId,
        lock: bool,
    ) -> Result<Resource> {
        let query = format!(
            "SELECT r.*, g.name AS group_name FROM resources r
             JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
             WHERE r.subscription_id = $1 AND r.group_key = $2 AND r.type_key = $3 AND r.name_key = $4{}",
            if lock { " FOR UPDATE OF r" } else { "" }
        );
        let row = sqlx::query(&query)
            .bind(id.subscription.as_str())
            .bind(id.group.key())
            .bind(type_key(id.provider))
            .bind(id.name.key())
            .fetch_optional(&mut *conn)
            .await?;
        match row {
            Some(row) => common::resource_row(&row),
            None => {
                Self::require_group(conn, &id.subscription, &id.group).await?;
                Err(StoreError::ResourceNotFound(id.to_string()))
            }
        }
    }

    async fn slots(
        &self,
        conn: &mut PgConnection,
        resource: &Resource,
    ) -> Result<Vec<KeySlotState>> {
        let rows = sqlx::query(
            "SELECT slot, generation, sealed, created_at, last_used_at FROM key_slots WHERE resource_id = $1",
        )
        .bind(resource.internal_id.to_string())
        .fetch_all(&mut *conn)
        .await?;
        common::slot_states(&self.sealer, resource, &rows)
    }

    /// Appends `changes` to the feed and `audit` to the chain, as the last work of a transaction.
    ///
    /// The advisory lock is held until the transaction ends, so appends (and the commits that follow
    /// them) happen one at a time across all nodes: the chain's head is read after the previous
    /// holder committed (each statement in READ COMMITTED takes a new snapshot, so the lock is its
    /// own statement), and feed numbers are handed out in commit order. Nothing after the lock waits
    /// for another row lock, so it cannot be part of a deadlock.
    async fn append_log(
        conn: &mut PgConnection,
        changes: &[Change<'_>],
        audit: &AuditRecord,
    ) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOG_LOCK)
            .execute(&mut *conn)
            .await?;
        // One round trip for the rest but the audit insert (whose hash is computed here): the
        // serialized section is what bounds cluster-wide write throughput. The notice is delivered
        // at commit, and only if the transaction commits; none is sent when nothing was appended.
        let head = sqlx::query(
            "WITH appended AS (
                 INSERT INTO changes (resource_id, slot, change, at)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])
                 RETURNING seq
             ), notified AS (
                 SELECT pg_notify($5, max(seq)::text) FROM appended HAVING count(*) > 0
             )
             SELECT (SELECT count(*) FROM notified) AS notified, last.seq, last.hash
             FROM (SELECT 1) AS one
             LEFT JOIN (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS last ON true",
        )
        .bind(
            changes
                .iter()
                .map(|c| c.resource.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(changes.iter().map(|c| c.slot).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.change).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.at).collect::<Vec<_>>())
        .bind(CHANNEL)
        .fetch_one(&mut *conn)
        .await?;
        let (seq, prev) = match head.get::<Option<i64>, _>("seq") {
            Some(seq) => (seq + 1, head.get::<Vec<u8>, _>("hash")),
            None => (1, vec![0u8; 32]),
        };
        let at = to_micros(audit.at);
        let hash = chain_hash(&prev, seq, at, audit);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, principal_id, action, scope, subscription_id, source, request_id, result, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(seq)
        .bind(at)
        .bind(&audit.principal_id)
        .bind(&audit.action)
        .bind(&audit.scope)
        .bind(audit.subscription())
        .bind(&audit.source)
        .bind(&audit.request_id)
        .bind(&audit.result)
        .bind(&prev)
        .bind(&hash[..])
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn record_operation(conn: &mut PgConnection, op: Option<&Operation>) -> Result<()> {
        let Some(op) = op else { return Ok(()) };
        sqlx::query(
            "INSERT INTO operations (id, subscription_id, namespace, location, resource_id, status, started_at, ended_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(op.id.to_string())
        .bind(op.subscription.as_str())
        .bind(&op.namespace)
        .bind(&op.location)
        .bind(&op.resource_id)
        .bind(&op.status)
        .bind(to_micros(op.started_at))
        .bind(to_micros(op.ended_at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn try_put_subscription(
        &self,
        id: &SubscriptionId,
        display_name: &str,
        audit: &AuditRecord,
    ) -> Result<(Subscription, Written)> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query("UPDATE subscriptions SET display_name = $1 WHERE id = $2")
            .bind(display_name)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let written = if updated == 0 {
            sqlx::query(
                "INSERT INTO subscriptions (id, display_name, created_at) VALUES ($1, $2, $3)",
            )
            .bind(id.as_str())
            .bind(display_name)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
            Written::Created
        } else {
            Written::Updated
        };
        let row = sqlx::query("SELECT * FROM subscriptions WHERE id = $1")
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let sub = common::subscription_row(&row)?;
        Self::append_log(&mut tx, &[], audit).await?;
        tx.commit().await?;
        Ok((sub, written))
    }

    async fn try_put_group(
        &self,
        group: &ResourceGroup,
        audit: &AuditRecord,
    ) -> Result<(ResourceGroup, Written)> {
        let mut tx = self.pool.begin().await?;
        Self::require_subscription(&mut tx, &group.subscription).await?;
        let tags = serde_json::to_string(&group.tags).expect("tags serialize");
        // The group keeps the name casing it was created with, as ARM does.
        let updated = sqlx::query("UPDATE resource_groups SET location = $1, tags = $2 WHERE subscription_id = $3 AND name_key = $4")
            .bind(&group.location)
            .bind(&tags)
            .bind(group.subscription.as_str())
            .bind(group.name.key())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let written = if updated == 0 {
            sqlx::query("INSERT INTO resource_groups (subscription_id, name_key, name, location, tags, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(group.subscription.as_str())
                .bind(group.name.key())
                .bind(group.name.as_str())
                .bind(&group.location)
                .bind(&tags)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
            // A new scope has no assignments, even if rows for its name outlived an earlier
            // scope of that name.
            Self::delete_assignments_under(&mut tx, &group_scope(&group.subscription, &group.name))
                .await?;
            Written::Created
        } else {
            Written::Updated
        };
        let row = sqlx::query(
            "SELECT * FROM resource_groups WHERE subscription_id = $1 AND name_key = $2",
        )
        .bind(group.subscription.as_str())
        .bind(group.name.key())
        .fetch_one(&mut *tx)
        .await?;
        let stored = common::group_row(&row)?;
        Self::append_log(&mut tx, &[], audit).await?;
        tx.commit().await?;
        Ok((stored, written))
    }

    async fn try_put_resource(
        &self,
        id: &ResourceId,
        spec: &ResourceSpec,
        initial_keys: &[(&'static Slot, Secret)],
        operation: Option<&Operation>,
        audit: &AuditRecord,
    ) -> Result<(Resource, Written)> {
        let mut tx = self.pool.begin().await?;
        let now = now_micros();
        let common::SpecColumns {
            sku,
            tags,
            settings,
        } = common::SpecColumns::of(spec);
        let (internal_id, written, change) = match Self::find_resource(&mut tx, id, true).await {
            Ok(existing) => {
                sqlx::query("UPDATE resources SET location = $1, kind = $2, sku = $3, tags = $4, settings = $5, etag = $6, updated_at = $7 WHERE internal_id = $8")
                    .bind(&spec.location)
                    .bind(&spec.kind)
                    .bind(&sku)
                    .bind(&tags)
                    .bind(&settings)
                    .bind(new_etag())
                    .bind(now)
                    .bind(existing.internal_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                (existing.internal_id, Written::Updated, "updated")
            }
            Err(StoreError::ResourceNotFound(_)) => {
                let internal_id = Uuid::new_v4();
                sqlx::query(
                    "INSERT INTO resources (internal_id, subscription_id, group_key, type_key, name_key, name, location, kind, sku, tags, settings, etag, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(internal_id.to_string())
                .bind(id.subscription.as_str())
                .bind(id.group.key())
                .bind(type_key(id.provider))
                .bind(id.name.key())
                .bind(id.name.as_str())
                .bind(&spec.location)
                .bind(&spec.kind)
                .bind(&sku)
                .bind(&tags)
                .bind(&settings)
                .bind(new_etag())
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                for (slot, secret) in initial_keys {
                    sqlx::query("INSERT INTO key_slots (resource_id, slot, generation, sealed, digest, created_at) VALUES ($1, $2, 1, $3, $4, $5)")
                        .bind(internal_id.to_string())
                        .bind(slot.name)
                        .bind(self.sealer.seal(secret, &seal_context(&internal_id, slot.name, 1)))
                        .bind(&self.sealer.digest(secret.expose())[..])
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::delete_assignments_under(&mut tx, &id.to_string()).await?;
                (internal_id, Written::Created, "created")
            }
            Err(e) => return Err(e),
        };
        let resource = Self::find_resource(&mut tx, id, false).await?;
        Self::record_operation(&mut tx, operation).await?;
        let changes = [Change {
            resource: internal_id,
            slot: None,
            change,
            at: now,
        }];
        Self::append_log(&mut tx, &changes, audit).await?;
        tx.commit().await?;
        Ok((resource, written))
    }

    async fn try_put_assignment(
        &self,
        a: &RoleAssignment,
        audit: &AuditRecord,
    ) -> Result<(RoleAssignment, Written)> {
        let mut tx = self.pool.begin().await?;
        // Writes of one principal's assignments apply one after another, so two names for the same
        // principal, role and scope cannot both pass the duplicate check below.
        sqlx::query("SELECT 1 FROM principals WHERE id = $1 FOR UPDATE")
            .bind(a.principal_id.to_string())
            .execute(&mut *tx)
            .await?;
        Self::lock_scope(&mut tx, &a.scope).await?;
        let key = scope_key(&a.scope);
        let existing = sqlx::query("SELECT * FROM role_assignments WHERE id = $1")
            .bind(a.id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            let existing = common::assignment_row(&row)?;
            check_rewrite(&existing, a)?;
            Self::append_log(&mut tx, &[], audit).await?;
            tx.commit().await?;
            return Ok((existing, Written::Updated));
        }
        let duplicate = sqlx::query_scalar::<_, String>(
            "SELECT id FROM role_assignments WHERE scope_key = $1 AND role_id = $2 AND principal_id = $3",
        )
        .bind(&key)
        .bind(a.role_id.to_string())
        .bind(a.principal_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(other) = duplicate {
            return Err(StoreError::AssignmentExists(
                Uuid::parse_str(&other).map_err(corrupt)?,
            ));
        }
        sqlx::query(
            "INSERT INTO role_assignments (id, scope, scope_key, role_id, principal_id, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(a.id.to_string())
        .bind(&a.scope)
        .bind(&key)
        .bind(a.role_id.to_string())
        .bind(a.principal_id.to_string())
        .bind(to_micros(a.created_at))
        .bind(&a.created_by)
        .execute(&mut *tx)
        .await?;
        Self::append_log(&mut tx, &[], audit).await?;
        tx.commit().await?;
        Ok((a.clone(), Written::Created))
    }

    /// Fails with the most precise not-found unless the assignment scope exists, and holds a share
    /// lock on its row to the end of the transaction: a concurrent deletion of the scope (which
    /// locks the row for update, then deletes the scope's assignments) waits for this transaction
    /// and so deletes what it wrote, or goes first and this one finds no scope.
    async fn lock_scope(conn: &mut PgConnection, scope: &str) -> Result<()> {
        match AssignmentScope::parse(scope) {
            Some(AssignmentScope::Subscription(sub)) => {
                Self::require_subscription(conn, &sub).await
            }
            Some(AssignmentScope::Group(sub, group)) => {
                let found = sqlx::query(
                    "SELECT 1 FROM resource_groups WHERE subscription_id = $1 AND name_key = $2 FOR SHARE",
                )
                .bind(sub.as_str())
                .bind(group.key())
                .fetch_optional(&mut *conn)
                .await?;
                match found {
                    Some(_) => Ok(()),
                    None => Self::require_group(conn, &sub, &group).await,
                }
            }
            Some(AssignmentScope::Resource(id)) => {
                let found = sqlx::query(
                    "SELECT 1 FROM resources WHERE subscription_id = $1 AND group_key = $2 AND type_key = $3 AND name_key = $4 FOR SHARE",
                )
                .bind(id.subscription.as_str())
                .bind(id.group.key())
                .bind(type_key(id.provider))
                .bind(id.name.key())
                .fetch_optional(&mut *conn)
                .await?;
                match found {
                    Some(_) => Ok(()),
                    None => Self::find_resource(conn, &id, false).await.map(|_| ()),
                }
            }
            None => Err(corrupt(format!("'{scope}' is not an assignment scope"))),
        }
    }

    /// Deletes the role assignments at `scope` and at every scope below it.
    async fn delete_assignments_under(conn: &mut PgConnection, scope: &str) -> Result<()> {
        let key = scope_key(scope);
        let prefix = format!("{key}/");
        // A prefix comparison, not LIKE: `_` is a wildcard there and allowed in group names.
        sqlx::query(
            "DELETE FROM role_assignments WHERE scope_key = $1 OR starts_with(scope_key, $2)",
        )
        .bind(&key)
        .bind(&prefix)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    async fn bootstrap(&self) -> Result<Option<BootstrapRecord>> {
        let row = sqlx::query(
            "SELECT tenant_id, subscription_id, principal_id FROM bootstrap WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| common::bootstrap_row(&row)).transpose()
    }

    async fn init_bootstrap(
        &self,
        proposed: BootstrapRecord,
        token_digest: [u8; 32],
    ) -> Result<(BootstrapRecord, bool)> {
        let mut tx = self.pool.begin().await?;
        // Nodes that start together queue here; the first makes the record, the others then find it.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *tx)
            .await?;
        let exists = sqlx::query("SELECT 1 FROM bootstrap WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            tx.rollback().await?;
            let record = self
                .bootstrap()
                .await?
                .ok_or_else(|| corrupt("bootstrap vanished"))?;
            return Ok((record, false));
        }
        let now = now_micros();
        sqlx::query("INSERT INTO subscriptions (id, display_name, created_at) VALUES ($1, $2, $3)")
            .bind(proposed.subscription_id.as_str())
            .bind("rekey default subscription")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO principals (id, display_name, token_digest, is_owner, created_at) VALUES ($1, $2, $3, 1, $4)")
            .bind(proposed.principal_id.to_string())
            .bind("bootstrap owner")
            .bind(&token_digest[..])
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO bootstrap (id, tenant_id, subscription_id, principal_id, created_at) VALUES (1, $1, $2, $3, $4)")
            .bind(proposed.tenant_id.to_string())
            .bind(proposed.subscription_id.as_str())
            .bind(proposed.principal_id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((proposed, true))
    }

    async fn principal_by_token(&self, token_digest: &[u8; 32]) -> Result<Option<Principal>> {
        let row = sqlx::query("SELECT * FROM principals WHERE token_digest = $1")
            .bind(&token_digest[..])
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| common::principal_row(&r)).transpose()
    }

    async fn principal(&self, id: &Uuid) -> Result<Option<Principal>> {
        let row = sqlx::query("SELECT * FROM principals WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| common::principal_row(&r)).transpose()
    }

    async fn create_principal(
        &self,
        p: &Principal,
        token_digest: [u8; 32],
        audit: &AuditRecord,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO principals (id, display_name, token_digest, is_owner, created_at, expires_at, revoked_at, created_by)
             VALUES ($1, $2, $3, 0, $4, $5, NULL, $6)",
        )
        .bind(p.id.to_string())
        .bind(&p.display_name)
        .bind(&token_digest[..])
        .bind(to_micros(p.created_at))
        .bind(p.expires_at.map(to_micros))
        .bind(&p.created_by)
        .execute(&mut *tx)
        .await?;
        Self::append_log(&mut tx, &[], audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_principals(&self) -> Result<Vec<Principal>> {
        let rows = sqlx::query("SELECT * FROM principals ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(common::principal_row).collect()
    }

    async fn revoke_principal(&self, id: &Uuid, audit: &AuditRecord) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE principals SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_micros())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let exists = sqlx::query("SELECT 1 FROM principals WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if changed > 0 {
            Self::append_log(&mut tx, &[], audit).await?;
        }
        tx.commit().await?;
        Ok(exists)
    }

    async fn put_assignment(
        &self,
        a: &RoleAssignment,
        audit: &AuditRecord,
    ) -> Result<(RoleAssignment, Written)> {
        retrying(|| self.try_put_assignment(a, audit)).await
    }

    async fn assignment(&self, id: &Uuid) -> Result<Option<RoleAssignment>> {
        let row = sqlx::query("SELECT * FROM role_assignments WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| common::assignment_row(&r)).transpose()
    }

    async fn delete_assignment(
        &self,
        id: &Uuid,
        audit: &AuditRecord,
    ) -> Result<Option<RoleAssignment>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("DELETE FROM role_assignments WHERE id = $1 RETURNING *")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let found = common::assignment_row(&row)?;
        Self::append_log(&mut tx, &[], audit).await?;
        tx.commit().await?;
        Ok(Some(found))
    }

    async fn assignments_of(&self, principal: &Uuid) -> Result<Vec<RoleAssignment>> {
        let rows = sqlx::query("SELECT * FROM role_assignments WHERE principal_id = $1")
            .bind(principal.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(common::assignment_row).collect()
    }

    async fn list_assignments(&self) -> Result<Vec<RoleAssignment>> {
        let rows = sqlx::query("SELECT * FROM role_assignments ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(common::assignment_row).collect()
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        Self::append_log(&mut tx, &[], record).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_records(
        &self,
        subscription: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE subscription_id = $1 AND at >= $2 ORDER BY seq",
        )
        .bind(subscription.to_ascii_lowercase())
        .bind(to_micros(since))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|row| common::audit_row(row).1).collect())
    }

    async fn verify_audit_chain(&self) -> Result<ChainCheck> {
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        Ok(check_chain(rows.iter().map(common::audit_row)))
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>> {
        let rows = sqlx::query("SELECT * FROM subscriptions ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(common::subscription_row).collect()
    }

    async fn subscription(&self, id: &SubscriptionId) -> Result<Subscription> {
        let row = sqlx::query("SELECT * FROM subscriptions WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| common::subscription_row(&r))
            .unwrap_or(Err(StoreError::SubscriptionNotFound(id.clone())))
    }

    async fn put_subscription(
        &self,
        id: &SubscriptionId,
        display_name: &str,
        audit: &AuditRecord,
    ) -> Result<(Subscription, Written)> {
        retrying(|| self.try_put_subscription(id, display_name, audit)).await
    }

    async fn put_group(
        &self,
        group: &ResourceGroup,
        audit: &AuditRecord,
    ) -> Result<(ResourceGroup, Written)> {
        retrying(|| self.try_put_group(group, audit)).await
    }

    async fn group(&self, sub: &SubscriptionId, name: &ResourceGroupName) -> Result<ResourceGroup> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(
            "SELECT * FROM resource_groups WHERE subscription_id = $1 AND name_key = $2",
        )
        .bind(sub.as_str())
        .bind(name.key())
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(row) => common::group_row(&row),
            None => {
                Self::require_subscription(&mut conn, sub).await?;
                Err(StoreError::ResourceGroupNotFound(name.to_string()))
            }
        }
    }

    async fn list_groups(&self, sub: &SubscriptionId) -> Result<Vec<ResourceGroup>> {
        let mut conn = self.pool.acquire().await?;
        Self::require_subscription(&mut conn, sub).await?;
        let rows = sqlx::query(
            "SELECT * FROM resource_groups WHERE subscription_id = $1 ORDER BY name_key",
        )
        .bind(sub.as_str())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(common::group_row).collect()
    }

    async fn delete_group(
        &self,
        sub: &SubscriptionId,
        name: &ResourceGroupName,
        audit: &AuditRecord,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        Self::require_subscription(&mut tx, sub).await?;
        // Locking the group first keeps another node from creating a resource in it between listing
        // the doomed resources and deleting them (the create's foreign key check waits on this lock,
        // then fails and is retried as not-found): every deleted resource gets its change entry.
        sqlx::query(
            "SELECT 1 FROM resource_groups WHERE subscription_id = $1 AND name_key = $2 FOR UPDATE",
        )
        .bind(sub.as_str())
        .bind(name.key())
        .fetch_optional(&mut *tx)
        .await?;
        let now = now_micros();
        let doomed = sqlx::query_scalar::<_, String>(
            "SELECT internal_id FROM resources WHERE subscription_id = $1 AND group_key = $2 ORDER BY internal_id FOR UPDATE",
        )
        .bind(sub.as_str())
        .bind(name.key())
        .fetch_all(&mut *tx)
        .await?;
        let mut changes = Vec::with_capacity(doomed.len());
        for id in &doomed {
            changes.push(Change {
                resource: Uuid::parse_str(id).map_err(corrupt)?,
                slot: None,
                change: "deleted",
                at: now,
            });
        }
        // Resources and their key slots go with the group (ON DELETE CASCADE).
        let deleted =
            sqlx::query("DELETE FROM resource_groups WHERE subscription_id = $1 AND name_key = $2")
                .bind(sub.as_str())
                .bind(name.key())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        Self::delete_assignments_under(&mut tx, &group_scope(sub, name)).await?;
        Self::append_log(&mut tx, &changes, audit).await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn put_resource(
        &self,
        id: &ResourceId,
        spec: &ResourceSpec,
        initial_keys: Vec<(&'static Slot, Secret)>,
        operation: Option<&Operation>,
        audit: &AuditRecord,
    ) -> Result<(Resource, Written)> {
        retrying(|| self.try_put_resource(id, spec, &initial_keys, operation, audit)).await
    }

    async fn update_resource(
        &self,
        id: &ResourceId,
        spec: &ResourceSpec,
        audit: &AuditRecord,
    ) -> Result<Resource> {
        let columns = common::SpecColumns::of(spec);
        let mut tx = self.pool.begin().await?;
        let existing = Self::find_resource(&mut tx, id, true).await?;
        let now = now_micros();
        sqlx::query("UPDATE resources SET kind = $1, sku = $2, tags = $3, settings = $4, etag = $5, updated_at = $6 WHERE internal_id = $7")
            .bind(&spec.kind)
            .bind(columns.sku)
            .bind(columns.tags)
            .bind(columns.settings)
            .bind(new_etag())
            .bind(now)
            .bind(existing.internal_id.to_string())
            .execute(&mut *tx)
            .await?;
        let resource = Self::find_resource(&mut tx, id, false).await?;
        let changes = [Change {
            resource: existing.internal_id,
            slot: None,
            change: "updated",
            at: now,
        }];
        Self::append_log(&mut tx, &changes, audit).await?;
        tx.commit().await?;
        Ok(resource)
    }

    async fn resource(&self, id: &ResourceId) -> Result<Resource> {
        let mut conn = self.pool.acquire().await?;
        Self::find_resource(&mut conn, id, false).await
    }

    async fn list_resources(
        &self,
        sub: &SubscriptionId,
        group: Option<&ResourceGroupName>,
        provider: &'static Provider,
    ) -> Result<Vec<Resource>> {
        let mut conn = self.pool.acquire().await?;
        match group {
            Some(g) => Self::require_group(&mut conn, sub, g).await?,
            None => Self::require_subscription(&mut conn, sub).await?,
        }
        let rows = sqlx::query(
            "SELECT r.*, g.name AS group_name FROM resources r
             JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
             WHERE r.subscription_id = $1 AND r.type_key = $2 AND ($3::text IS NULL OR r.group_key = $3)
             ORDER BY r.group_key, r.name_key",
        )
        .bind(sub.as_str())
        .bind(type_key(provider))
        .bind(group.map(|g| g.key()))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(common::resource_row).collect()
    }

    async fn delete_resource(
        &self,
        id: &ResourceId,
        operation: Option<&Operation>,
        audit: &AuditRecord,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let existing = match Self::find_resource(&mut tx, id, true).await {
            Ok(r) => r,
            Err(StoreError::ResourceNotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        sqlx::query("DELETE FROM resources WHERE internal_id = $1")
            .bind(existing.internal_id.to_string())
            .execute(&mut *tx)
            .await?;
        Self::delete_assignments_under(&mut tx, &existing.id.to_string()).await?;
        Self::record_operation(&mut tx, operation).await?;
        let changes = [Change {
            resource: existing.internal_id,
            slot: None,
            change: "deleted",
            at: now_micros(),
        }];
        Self::append_log(&mut tx, &changes, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn keys(&self, id: &ResourceId) -> Result<(Resource, Vec<KeySlotState>)> {
        // One REPEATABLE READ transaction, so the resource and its slots are from the same commit.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let resource = Self::find_resource(&mut tx, id, false).await?;
        let slots = self.slots(&mut tx, &resource).await?;
        tx.commit().await?;
        Ok((resource, slots))
    }

    async fn regenerate(
        &self,
        id: &ResourceId,
        new_keys: Vec<(&'static Slot, Secret)>,
        operation: Option<&Operation>,
        audit: &AuditRecord,
    ) -> Result<(Resource, Vec<KeySlotState>)> {
        let mut tx = self.pool.begin().await?;
        // The resource's row lock serializes regenerations of it across nodes: each reads the
        // generation the previous one committed.
        let resource = Self::find_resource(&mut tx, id, true).await?;
        let internal = resource.internal_id.to_string();
        let now = now_micros();
        let mut changes = Vec::with_capacity(new_keys.len());
        for (slot, secret) in &new_keys {
            let generation = sqlx::query_scalar::<_, i64>(
                "SELECT generation FROM key_slots WHERE resource_id = $1 AND slot = $2",
            )
            .bind(&internal)
            .bind(slot.name)
            .fetch_one(&mut *tx)
            .await?
                + 1;
            sqlx::query("UPDATE key_slots SET generation = $1, sealed = $2, digest = $3, created_at = $4, last_used_at = NULL WHERE resource_id = $5 AND slot = $6")
                .bind(generation)
                .bind(self.sealer.seal(secret, &seal_context(&resource.internal_id, slot.name, generation)))
                .bind(&self.sealer.digest(secret.expose())[..])
                .bind(now)
                .bind(&internal)
                .bind(slot.name)
                .execute(&mut *tx)
                .await?;
            changes.push(Change {
                resource: resource.internal_id,
                slot: Some(slot.name),
                change: "regenerated",
                at: now,
            });
        }
        let slots = self.slots(&mut tx, &resource).await?;
        Self::record_operation(&mut tx, operation).await?;
        Self::append_log(&mut tx, &changes, audit).await?;
        tx.commit().await?;
        Ok((resource, slots))
    }

    fn key_digest(&self, presented: &str) -> [u8; 32] {
        self.sealer.digest(presented)
    }

    async fn index_entries(&self, only: Option<&[Uuid]>) -> Result<Vec<IndexedResource>> {
        // One statement, so one snapshot (a resource and its slots agree) and one round trip: this
        // is on the path of every change notice another node's index follows.
        let ids: Option<Vec<String>> = only.map(|ids| ids.iter().map(Uuid::to_string).collect());
        let rows = sqlx::query(
            "SELECT r.*, g.name AS group_name,
                    k.slot AS k_slot, k.generation AS k_generation, k.digest AS k_digest, k.sealed AS k_sealed
             FROM resources r
             JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
             LEFT JOIN key_slots k ON k.resource_id = r.internal_id
             WHERE $1::text[] IS NULL OR r.internal_id = ANY($1)
             ORDER BY r.internal_id",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut resources: Vec<IndexedResource> = Vec::new();
        for row in &rows {
            let internal_id =
                Uuid::parse_str(row.get::<&str, _>("internal_id")).map_err(corrupt)?;
            let same = resources
                .last()
                .is_some_and(|last| last.resource.internal_id == internal_id);
            if !same {
                resources.push(IndexedResource {
                    resource: common::resource_row(row)?,
                    slots: Vec::new(),
                });
            }
            if row.opt_text("k_slot").is_none() {
                continue;
            }
            let entry = resources.last_mut().expect("pushed above");
            common::push_indexed_slot(&self.sealer, entry, row, "k_")?;
        }
        Ok(resources)
    }

    async fn latest_change(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(seq), 0)::bigint FROM changes")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn changes_since(&self, after: i64) -> Result<(i64, Vec<Uuid>)> {
        let rows = sqlx::query("SELECT seq, resource_id FROM changes WHERE seq > $1 ORDER BY seq")
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
        common::changed_resources(after, &rows)
    }

    async fn record_key_uses(&self, uses: &[KeyUse]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        // Last-use times are hints: not worth a durable commit, and never worth delaying a
        // regeneration or deletion that holds a slot's row; with a short lock timeout this flush is
        // the one that gives way (its uses are then dropped, as on any failed flush).
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SET LOCAL lock_timeout = '100ms'")
            .execute(&mut *tx)
            .await?;
        // Two statements per chunk, not one per use: a data plane that has just started sees every
        // key's first use at once, and a round trip per use would hold the rows' locks for seconds.
        for chunk in uses.chunks(1_000) {
            let resources: Vec<String> = chunk.iter().map(|u| u.resource.to_string()).collect();
            let slots: Vec<&str> = chunk.iter().map(|u| u.slot).collect();
            let generations: Vec<i64> = chunk.iter().map(|u| u.generation).collect();
            let ats: Vec<i64> = chunk.iter().map(|u| to_micros(u.at)).collect();
            // Rows are locked in one order on every node, so two flushes never deadlock each
            // other (an UPDATE's join would lock them in whatever order its plan reads them).
            sqlx::query(
                "SELECT 1 FROM key_slots
                 WHERE (resource_id, slot) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                 ORDER BY resource_id, slot FOR UPDATE",
            )
            .bind(&resources)
            .bind(&slots)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE key_slots SET last_used_at = u.at
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
                      AS u(resource_id, slot, generation, at)
                 WHERE key_slots.resource_id = u.resource_id AND key_slots.slot = u.slot
                   AND key_slots.generation = u.generation
                   AND (key_slots.last_used_at IS NULL OR key_slots.last_used_at < u.at)",
            )
            .bind(&resources)
            .bind(&slots)
            .bind(&generations)
            .bind(&ats)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at DESC, kid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| common::signing_key_row(&self.sealer, row))
            .collect()
    }

    async fn rotate_signing_key(&self, key: &SigningKey, audit: &AuditRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, sealed, public_key, created_at, retired_at) VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(&key.kid)
        .bind(common::seal_signing_key(&self.sealer, key))
        .bind(&key.public_key)
        .bind(to_micros(key.created_at))
        .execute(&mut *tx)
        .await?;
        Self::append_log(&mut tx, &[], audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn operation(&self, sub: &SubscriptionId, id: &Uuid) -> Result<Option<Operation>> {
        let row = sqlx::query("SELECT * FROM operations WHERE id = $1 AND subscription_id = $2")
            .bind(id.to_string())
            .bind(sub.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| common::operation_row(&row, id, sub)))
    }

    async fn listen(&self) -> Result<Option<Box<dyn ChangeListener>>> {
        // Its own one-connection pool: the listening connection is held for good, and reconnecting
        // it must not wait on (or starve) the request pool.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.acquire_timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(Box::new(PgChangeListener {
            listener,
            lost: false,
        })))
    }
}

/// Notices from `LISTEN rekey_changes`.
pub struct PgChangeListener {
    listener: PgListener,
    /// The last call failed: the connection is gone, and notices sent since are lost.
    lost: bool,
}

#[async_trait]
impl ChangeListener for PgChangeListener {
    async fn next(&mut self) -> Result<ChangeNotice> {
        if self.lost {
            // Reconnects (and re-subscribes) or fails again; LISTEN on a channel already listened
            // to is a no-op.
            self.listener.listen(CHANNEL).await?;
            self.lost = false;
            return Ok(ChangeNotice::Resumed);
        }
        loop {
            match self.listener.try_recv().await {
                Ok(Some(notice)) => {
                    // Anything but a sequence number is someone else's use of the channel.
                    if let Ok(seq) = notice.payload().parse() {
                        return Ok(ChangeNotice::Committed(seq));
                    }
                }
                // The connection was lost and has been re-established.
                Ok(None) => return Ok(ChangeNotice::Resumed),
                Err(e) => {
                    self.lost = true;
                    return Err(e.into());
                }
            }
        }
    }
}
