//! Owns what both backends do alike once a query has run: reading rows into records (generic over
//! [`sqlx::Row`], so one decoder serves SQLite and PostgreSQL), opening sealed keys, and turning
//! specs into column values. The backends keep only their SQL text, locking and transactions.

use rekey_core::providers::{self, Provider};
use rekey_core::{
    KeySlotState, Resource, ResourceGroup, ResourceGroupName, ResourceId, ResourceName,
    ResourceSpec, Subscription, SubscriptionId,
};
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::audit::{AuditEntry, AuditRecord};
use crate::columns::{corrupt, from_micros, seal_context};
use crate::crypto::Sealer;
use crate::events::{EventSubscription, StoredEvent};
use crate::{
    BootstrapRecord, IndexedResource, IndexedSlot, KeyUse, Operation, Principal, Result,
    RoleAssignment, SigningKey, StoreError,
};

/// How often a write that lost a race with another node's write is tried again.
const ATTEMPTS: usize = 3;

/// A row of either backend, read by column name in the few column types the schema uses.
pub(crate) trait StoredRow {
    fn text(&self, column: &str) -> &str;
    fn opt_text(&self, column: &str) -> Option<&str>;
    fn int(&self, column: &str) -> i64;
    fn opt_int(&self, column: &str) -> Option<i64>;
    fn bytes(&self, column: &str) -> &[u8];

    fn string(&self, column: &str) -> String {
        self.text(column).to_string()
    }
    fn opt_string(&self, column: &str) -> Option<String> {
        self.opt_text(column).map(str::to_string)
    }
    fn uuid(&self, column: &str) -> Result<Uuid> {
        Uuid::parse_str(self.text(column)).map_err(corrupt)
    }
}

impl<R: Row> StoredRow for R
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r [u8]: Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> &str {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> Option<&str> {
        self.get(column)
    }
    fn int(&self, column: &str) -> i64 {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> Option<i64> {
        self.get(column)
    }
    fn bytes(&self, column: &str) -> &[u8] {
        self.get(column)
    }
}

pub(crate) fn subscription_row(row: &impl StoredRow) -> Result<Subscription> {
    Ok(Subscription {
        id: SubscriptionId::parse(row.text("id")).map_err(corrupt)?,
        display_name: row.string("display_name"),
        created_at: from_micros(row.int("created_at")),
    })
}

pub(crate) fn group_row(row: &impl StoredRow) -> Result<ResourceGroup> {
    Ok(ResourceGroup {
        subscription: SubscriptionId::parse(row.text("subscription_id")).map_err(corrupt)?,
        name: ResourceGroupName::parse(row.text("name")).map_err(corrupt)?,
        location: row.string("location"),
        tags: serde_json::from_str(row.text("tags")).map_err(corrupt)?,
        created_at: from_micros(row.int("created_at")),
    })
}

/// Builds a resource from a row of `resources` joined with its group's stored name.
pub(crate) fn resource_row(row: &impl StoredRow) -> Result<Resource> {
    let type_key = row.text("type_key");
    let (namespace, type_name) = type_key.split_once('/').ok_or_else(|| corrupt(type_key))?;
    let provider = providers::lookup(namespace, type_name).ok_or_else(|| corrupt(type_key))?;
    Ok(Resource {
        internal_id: row.uuid("internal_id")?,
        id: ResourceId {
            subscription: SubscriptionId::parse(row.text("subscription_id")).map_err(corrupt)?,
            group: ResourceGroupName::parse(row.text("group_name")).map_err(corrupt)?,
            provider,
            name: ResourceName::parse(provider, row.text("name")).map_err(corrupt)?,
        },
        spec: ResourceSpec {
            location: row.string("location"),
            kind: row.opt_string("kind"),
            sku: row
                .opt_text("sku")
                .map(serde_json::from_str)
                .transpose()
                .map_err(corrupt)?,
            tags: serde_json::from_str(row.text("tags")).map_err(corrupt)?,
            settings: serde_json::from_str(row.text("settings")).map_err(corrupt)?,
        },
        etag: row.string("etag"),
        created_at: from_micros(row.int("created_at")),
        updated_at: from_micros(row.int("updated_at")),
    })
}

/// A stored audit record, with its time as stored (the chain hashes those microseconds).
pub(crate) fn audit_row(row: &impl StoredRow) -> (i64, AuditEntry) {
    let at = row.int("at");
    let entry = AuditEntry {
        seq: row.int("seq"),
        record: AuditRecord {
            at: from_micros(at),
            principal_id: row.string("principal_id"),
            action: row.string("action"),
            scope: row.string("scope"),
            source: row.string("source"),
            request_id: row.string("request_id"),
            result: row.string("result"),
        },
        prev_hash: row.bytes("prev_hash").to_vec(),
        hash: row.bytes("hash").to_vec(),
    };
    (at, entry)
}

pub(crate) fn principal_row(row: &impl StoredRow) -> Result<Principal> {
    Ok(Principal {
        id: row.uuid("id")?,
        display_name: row.string("display_name"),
        is_owner: row.int("is_owner") != 0,
        expires_at: row.opt_int("expires_at").map(from_micros),
        revoked_at: row.opt_int("revoked_at").map(from_micros),
        created_by: row.opt_string("created_by"),
        created_at: from_micros(row.int("created_at")),
    })
}

pub(crate) fn assignment_row(row: &impl StoredRow) -> Result<RoleAssignment> {
    Ok(RoleAssignment {
        id: row.uuid("id")?,
        scope: row.string("scope"),
        role_id: row.uuid("role_id")?,
        principal_id: row.uuid("principal_id")?,
        created_at: from_micros(row.int("created_at")),
        created_by: row.string("created_by"),
    })
}

pub(crate) fn bootstrap_row(row: &impl StoredRow) -> Result<BootstrapRecord> {
    Ok(BootstrapRecord {
        tenant_id: row.uuid("tenant_id")?,
        subscription_id: SubscriptionId::parse(row.text("subscription_id")).map_err(corrupt)?,
        principal_id: row.uuid("principal_id")?,
    })
}

/// An operation row found by its id within `sub`.
pub(crate) fn operation_row(row: &impl StoredRow, id: &Uuid, sub: &SubscriptionId) -> Operation {
    Operation {
        id: *id,
        subscription: sub.clone(),
        namespace: row.string("namespace"),
        location: row.string("location"),
        resource_id: row.string("resource_id"),
        status: row.string("status"),
        started_at: from_micros(row.int("started_at")),
        ended_at: from_micros(row.int("ended_at")),
    }
}

pub(crate) fn signing_key_row(sealer: &Sealer, row: &impl StoredRow) -> Result<SigningKey> {
    let kid = row.string("kid");
    let pkcs8 = sealer.open_bytes(row.bytes("sealed"), &format!("signing-key/{kid}"))?;
    Ok(SigningKey {
        kid,
        pkcs8,
        public_key: row.bytes("public_key").to_vec(),
        created_at: from_micros(row.int("created_at")),
        retired_at: row.opt_int("retired_at").map(from_micros),
    })
}

/// The sealed form of a signing key, bound to its kid.
pub(crate) fn seal_signing_key(sealer: &Sealer, key: &SigningKey) -> Vec<u8> {
    sealer.seal_bytes(&key.pkcs8, &format!("signing-key/{}", key.kid))
}

/// Every slot of `resource` from its `key_slots` rows, in the provider's slot order, opened.
pub(crate) fn slot_states<R: StoredRow>(
    sealer: &Sealer,
    resource: &Resource,
    rows: &[R],
) -> Result<Vec<KeySlotState>> {
    let mut out = Vec::with_capacity(rows.len());
    for slot in resource.id.provider.slots {
        let row = rows
            .iter()
            .find(|r| r.text("slot") == slot.name)
            .ok_or_else(|| corrupt(format!("{} has no {} key", resource.id, slot.name)))?;
        let generation = row.int("generation");
        let secret = sealer.open(
            row.bytes("sealed"),
            &seal_context(&resource.internal_id, slot.name, generation),
        )?;
        out.push(KeySlotState {
            slot,
            secret,
            generation,
            created_at: from_micros(row.int("created_at")),
            last_used: row.opt_int("last_used_at").map(from_micros),
        });
    }
    Ok(out)
}

/// The uses a batch records: one per slot, its newest generation's newest use (an upsert may not
/// touch a row twice in one statement), in the tables' key order, so a batch touches one narrow
/// range of `key_last_uses` and two nodes' batches lock its rows in the same order. The internal
/// id's text form, which the stores compare, sorts as its bytes do.
pub(crate) fn latest_uses(uses: &[KeyUse]) -> Vec<KeyUse> {
    let mut out = uses.to_vec();
    out.sort_unstable_by(|a, b| {
        (a.resource, a.slot, b.generation, b.at).cmp(&(b.resource, b.slot, a.generation, a.at))
    });
    out.dedup_by(|later, first| later.resource == first.resource && later.slot == first.slot);
    out
}

/// Adds the slot a `key_slots` row describes (its columns named `{prefix}slot`, …) to `entry`: the
/// digest always, the plain key only for types whose clients sign requests with it.
pub(crate) fn push_indexed_slot(
    sealer: &Sealer,
    entry: &mut IndexedResource,
    row: &impl StoredRow,
    prefix: &str,
) -> Result<()> {
    let column = |name: &str| format!("{prefix}{name}");
    let provider: &'static Provider = entry.resource.id.provider;
    let name = row.text(&column("slot"));
    let slot = provider
        .slot(name)
        .ok_or_else(|| corrupt(format!("unknown slot {name}")))?;
    let generation = row.int(&column("generation"));
    let secret = if provider.signs_requests {
        let context = seal_context(&entry.resource.internal_id, slot.name, generation);
        Some(sealer.open(row.bytes(&column("sealed")), &context)?)
    } else {
        None
    };
    entry.slots.push(IndexedSlot {
        slot,
        generation,
        digest: row
            .bytes(&column("digest"))
            .try_into()
            .map_err(|_| corrupt("digest is not 32 bytes"))?,
        secret,
    });
    Ok(())
}

/// The feed's latest sequence number and the distinct resources in `changes` rows (`seq`,
/// `resource_id`) after `after`, in feed order.
pub(crate) fn changed_resources<R: StoredRow>(after: i64, rows: &[R]) -> Result<(i64, Vec<Uuid>)> {
    let mut latest = after;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        latest = latest.max(row.int("seq"));
        let id = row.uuid("resource_id")?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok((latest, ids))
}

/// A spec's stored columns: `sku`, `tags` and `settings` as JSON text.
pub(crate) struct SpecColumns {
    pub sku: Option<String>,
    pub tags: String,
    pub settings: String,
}

impl SpecColumns {
    pub fn of(spec: &ResourceSpec) -> Self {
        Self {
            sku: spec.sku.as_ref().map(|s| s.to_string()),
            tags: serde_json::to_string(&spec.tags).expect("tags serialize"),
            settings: serde_json::Value::Object(spec.settings.clone()).to_string(),
        }
    }
}

/// One change-feed entry to append.
pub(crate) struct Change<'a> {
    pub resource: Uuid,
    pub slot: Option<&'a str>,
    pub change: &'static str,
    pub at: i64,
}

/// A write that lost a race with a concurrent one and is worth running again from the start (only
/// PostgreSQL's nodes race; SQLite's one writer never fails with these codes): a
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
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T>
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

pub(crate) fn event_subscription_row(row: &impl StoredRow) -> Result<EventSubscription> {
    Ok(EventSubscription {
        id: row.uuid("id")?,
        subscription: row.string("subscription_id"),
        scope: row.string("scope"),
        name: row.string("name"),
        endpoint_url: row.string("endpoint_url"),
        included_event_types: row
            .opt_text("included_event_types")
            .map(serde_json::from_str)
            .transpose()
            .map_err(corrupt)?,
        delivery_schema: row.string("delivery_schema"),
        max_attempts: row.int("max_attempts"),
        ttl_minutes: row.int("ttl_minutes"),
        provisioning_state: row.string("provisioning_state"),
        created_at: from_micros(row.int("created_at")),
        updated_at: from_micros(row.int("updated_at")),
    })
}

/// The context an event subscription's signing secret is sealed to.
pub(crate) fn event_secret_context(id: &Uuid) -> String {
    format!("event-subscription/{}", id.simple())
}

/// An `events` row (its columns named `{prefix}id`, …).
pub(crate) fn event_row(row: &impl StoredRow, prefix: &str) -> Result<StoredEvent> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(StoredEvent {
        id: row.uuid(&column("id"))?,
        subscription: row.string(&column("subscription_id")),
        subject: row.string(&column("subject")),
        event_type: row.string(&column("event_type")),
        event_time: from_micros(row.int(&column("event_time"))),
        data: serde_json::from_str(row.text(&column("data"))).map_err(corrupt)?,
    })
}

/// `($1, $2, …), ($n+1, …)`: `rows` rows of `columns` numbered parameters, for a multi-row insert.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        out.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", row * columns + column + 1));
        }
        out.push(')');
    }
    out
}

/// Separates the fields of one resource's index line ([`index_lines`]); JSON escapes it in strings
/// and no validated name or id holds it.
pub(crate) const FIELD: char = '\u{1f}';
/// Separates resources' index lines.
pub(crate) const LINE: char = '\u{1e}';

/// Calls `each` with the resources in `lines`, a page of the narrow index read: per resource its
/// internal id, subscription, group name, type key, name, location and settings (JSON), then its
/// slots as `slot generation hex-digest` triples, separated by spaces, fields by [`FIELD`] and
/// resources by [`LINE`]. Only what the index keeps is read: the resource's kind, SKU, tags, etag
/// and times are left empty. A resource whose type signs requests needs its plain keys, and a line
/// that does not read cleanly is read again whole: both are left in `whole` for the caller.
pub(crate) fn index_lines(
    lines: &str,
    each: &mut (dyn FnMut(IndexedResource) + Send),
    whole: &mut Vec<Uuid>,
) -> Result<()> {
    for line in lines.split(LINE).filter(|l| !l.is_empty()) {
        let mut fields = line.split(FIELD);
        let internal_id = fields.next().unwrap_or_default();
        let internal_id = Uuid::parse_str(internal_id).map_err(corrupt)?;
        match index_line(internal_id, fields) {
            Some(indexed) => each(indexed),
            None => whole.push(internal_id),
        }
    }
    Ok(())
}

fn index_line<'a>(
    internal_id: Uuid,
    mut fields: impl Iterator<Item = &'a str>,
) -> Option<IndexedResource> {
    let mut next = || fields.next();
    let (subscription, group, type_key, name, location, settings, keys) = (
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
    );
    if next().is_some() {
        return None;
    }
    let (namespace, type_name) = type_key.split_once('/')?;
    let provider = providers::lookup(namespace, type_name)?;
    if provider.signs_requests {
        return None;
    }
    let mut slots = Vec::with_capacity(provider.slots.len());
    let mut words = keys.split(' ').filter(|w| !w.is_empty());
    while let Some(slot) = words.next() {
        let slot = provider.slot(slot)?;
        let generation = words.next()?.parse().ok()?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(words.next()?, &mut digest).ok()?;
        slots.push(IndexedSlot {
            slot,
            generation,
            digest,
            secret: None,
        });
    }
    Some(IndexedResource {
        resource: Resource {
            internal_id,
            id: ResourceId {
                subscription: SubscriptionId::parse(subscription).ok()?,
                group: ResourceGroupName::parse(group).ok()?,
                provider,
                name: ResourceName::parse(provider, name).ok()?,
            },
            spec: ResourceSpec {
                location: location.to_string(),
                kind: None,
                sku: None,
                tags: Default::default(),
                settings: serde_json::from_str(settings).ok()?,
            },
            etag: String::new(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        },
        slots,
    })
}
