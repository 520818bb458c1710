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
use crate::common::{self, retrying, Change, StoredRow};
use crate::crypto::Sealer;
use crate::{
    check_rewrite, group_scope, scope_key, AssignmentScope, BootstrapRecord, ChangeListener,
    ChangeNotice, IndexedResource, KeyUse, Operation, Principal, Result, RoleAssignment,
    SigningKey, StoreError, Written,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel change notices are sent on; the payload is the transaction's last change seq.
const CHANNEL: &str = "rekey_changes";
/// The channel lease renewals are announced on (`pg_nodes`); the payload is the position acknowledged.
pub(crate) const ACK_CHANNEL: &str = "rekey_acks";

/// Advisory lock keys (one 64-bit space per database). Arbitrary, fixed, and distinct from the lock
/// sqlx's migrator takes (derived from the database name).
pub(crate) const LOG_LOCK: i64 = 0x7265_6b65_795f_6c67; // "rekey_lg"
const BOOTSTRAP_LOCK: i64 = 0x7265_6b65_795f_6273; // "rekey_bs"

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

impl PgStore {
    const ROW_LOCK: &'static str = " FOR UPDATE OF r";

    /// Nodes claiming deliveries at once each skip the rows another is claiming, so no delivery is
    /// claimed twice while its lease runs.
    const CLAIM_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";

    /// Nodes that start together queue here; the first makes the record, the others then find it.
    async fn lock_bootstrap(conn: &mut PgConnection) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Writes of one principal's assignments apply one after another, so two names for the same
    /// principal, role and scope cannot both pass the duplicate check; the scope is locked too.
    async fn lock_assignment_scope(conn: &mut PgConnection, a: &RoleAssignment) -> Result<()> {
        sqlx::query("SELECT 1 FROM principals WHERE id = $1 FOR UPDATE")
            .bind(a.principal_id.to_string())
            .execute(&mut *conn)
            .await?;
        Self::lock_scope(conn, &a.scope).await
    }

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

impl PgStore {
    /// The rows of [`crate::Rotation::record_usage`]'s JSON parameter.
    const USAGE_ROWS: &'static str =
        "jsonb_to_recordset(CAST($1 AS jsonb)) AS u(resource_id TEXT, slot TEXT, minute BIGINT,
         uses BIGINT, last_at BIGINT, last_client TEXT, retired BIGINT, retired_at BIGINT,
         retired_client TEXT)";
}

store_impl! {
    store: PgStore,
    conn: PgConnection,
    reads: pool,
    writes: pool,
    own: {
    async fn each_index_entry(
        &self,
        each: &mut (dyn FnMut(IndexedResource) + Send),
    ) -> Result<()> {
        // Only what the index keeps, a page of resources in one row: a million resources read
        // as a hundred rows, so the time goes to the database and the parse, not to per-row
        // handling. Keyset pages in internal-id order; a change committed during the load is
        // applied by the index's next catch-up, as for any load. The page size is written into
        // the statement: with it as a parameter, PostgreSQL's generic plan (from the sixth
        // execution on) sorted the whole table for each page.
        let mut after = String::new();
        let mut whole = Vec::new();
        // Each page's plan costs enough for PostgreSQL to compile it (JIT), which took longer
        // than running it; one transaction, so one connection and one setting for every page.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
        loop {
            let row = sqlx::query(
                "SELECT max(internal_id) AS last, string_agg(line, chr(30)) AS lines FROM (
                    SELECT r.internal_id,
                        r.internal_id || chr(31) || r.subscription_id || chr(31) || g.name || chr(31)
                        || r.type_key || chr(31) || r.name || chr(31) || r.location || chr(31)
                        || r.settings || chr(31)
                        || coalesce((SELECT string_agg(k.slot || ' ' || k.generation || ' ' || encode(k.digest, 'hex'), ' ')
                                     FROM key_slots k WHERE k.resource_id = r.internal_id), '') AS line
                    FROM resources r
                    JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
                    WHERE r.internal_id > $1 ORDER BY r.internal_id LIMIT 10000) page",
            )
            .bind(&after)
            .fetch_one(&mut *tx)
            .await?;
            let Some(last) = row.get::<Option<String>, _>("last") else {
                break;
            };
            after = last;
            common::index_lines(row.get::<&str, _>("lines"), each, &mut whole)?;
        }
        tx.commit().await?;
        for indexed in self.index_entries(Some(&whole)).await? {
            each(indexed);
        }
        Ok(())
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
        Self::delete_event_subscriptions_under(&mut tx, &group_scope(sub, name)).await?;
        Self::append_log(&mut tx, &changes, audit).await?;
        tx.commit().await?;
        Ok(deleted > 0)
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

    async fn record_key_uses(&self, uses: &[KeyUse]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let uses = common::latest_uses(uses);
        let mut tx = self.pool.begin().await?;
        // Last-use times are hints: not worth a durable commit, and never worth delaying a
        // deletion that holds a resource's rows; with a short lock timeout this flush is the one
        // that gives way (its uses are then dropped, as on any failed flush).
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SET LOCAL lock_timeout = '100ms'")
            .execute(&mut *tx)
            .await?;
        // One statement per chunk, not one per use: a data plane that has just started sees every
        // key's first use at once, and a round trip per use would hold the rows' locks for seconds.
        for chunk in uses.chunks(1_000) {
            let resources: Vec<String> = chunk.iter().map(|u| u.resource.to_string()).collect();
            let slots: Vec<&str> = chunk.iter().map(|u| u.slot).collect();
            let generations: Vec<i64> = chunk.iter().map(|u| u.generation).collect();
            let ats: Vec<i64> = chunk.iter().map(|u| to_micros(u.at)).collect();
            // Only a slot's current generation is recorded (the join), and a use never moves a
            // recorded one back. Rows are written in key order on every node (ORDER BY; the
            // join's plan may read them in any), so two nodes' flushes never deadlock.
            sqlx::query(
                "INSERT INTO key_last_uses (resource_id, slot, generation, used_at)
                 SELECT u.resource_id, u.slot, u.generation, u.at
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
                      AS u(resource_id, slot, generation, at)
                 JOIN key_slots k ON k.resource_id = u.resource_id AND k.slot = u.slot
                                 AND k.generation = u.generation
                 ORDER BY u.resource_id, u.slot
                 ON CONFLICT (resource_id, slot) DO UPDATE
                 SET generation = excluded.generation, used_at = excluded.used_at
                 WHERE key_last_uses.generation < excluded.generation
                    OR (key_last_uses.generation = excluded.generation
                        AND key_last_uses.used_at < excluded.used_at)",
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
        listener.listen_all([CHANNEL, ACK_CHANNEL]).await?;
        Ok(Some(Box::new(PgChangeListener {
            listener,
            lost: false,
        })))
    }

    fn node_table(&self) -> Option<Box<dyn crate::NodeTable>> {
        Some(Box::new(crate::pg_nodes::PgNodeTable {
            pool: self.pool.clone(),
        }))
    }
    }
}

/// Notices from `LISTEN rekey_changes` and `LISTEN rekey_acks`.
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
                Ok(Some(notice)) if notice.channel() == ACK_CHANNEL => {
                    return Ok(ChangeNotice::Acknowledged);
                }
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
