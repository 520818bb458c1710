//! Owns rekey's own rotation controls in storage (beyond Azure's wire): per-minute usage of each
//! slot summed over every node, retired keys kept by keyed digest (and, during an overlap a
//! Cosmos DB client signs with, sealed), disabled slots, and the sealed answers of idempotent
//! regenerations. [`Rotation`] is the trait both backends implement through [`rotation_impl!`]; the
//! regeneration transaction itself (`store_impl`'s `regenerate_with`) calls this module's hooks
//! so a retired key, an overlap and a remembered answer commit with the new key or not at all.

use async_trait::async_trait;
use rekey_core::providers::Slot;
use rekey_core::{KeySlotState, Resource, ResourceId, Secret};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AuditRecord, Result};

/// What a regeneration does beyond Azure's: keep the old key working for a while, and remember its
/// answer for a retry. The default is Azure's behaviour.
#[derive(Default)]
pub struct RegenerateOptions<'a> {
    /// How long the replaced key keeps opening its slot beside the new one.
    pub grace: Option<time::Duration>,
    /// Remember the answer under an idempotency token, in the regeneration's own transaction.
    pub remember: Option<Remember<'a>>,
}

/// An idempotency token and how to render the answer it stands for.
pub struct Remember<'a> {
    pub principal: &'a str,
    /// Which header gave the token (`idempotency-key`, `x-ms-client-request-id`).
    pub kind: &'a str,
    pub token: &'a str,
    /// Identifies the request (resource, body): the same token with another one is refused.
    pub fingerprint: [u8; 32],
    /// A remembered answer made before this is expired and may be replaced.
    pub expired_before: OffsetDateTime,
    /// The answer's bytes, from the committed state. They hold keys: sealed at rest.
    pub answer: &'a (dyn Fn(&Resource, &[KeySlotState]) -> Vec<u8> + Send + Sync),
}

/// An answer remembered under an idempotency token.
pub struct Remembered {
    pub fingerprint: [u8; 32],
    pub answer: zeroize::Zeroizing<Vec<u8>>,
    pub created_at: OffsetDateTime,
}

/// One node's data-plane uses of one slot within one minute, to be added to the stored counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotUsage {
    pub resource: Uuid,
    pub slot: &'static str,
    /// Unix minutes.
    pub minute: i64,
    pub uses: u64,
    pub last_at: Option<OffsetDateTime>,
    pub last_client: Option<String>,
    /// Presentations of the slot's retired keys.
    pub retired: u64,
    pub retired_at: Option<OffsetDateTime>,
    pub retired_client: Option<String>,
}

/// One stored minute of one slot's usage (every node's counts added).
#[derive(Debug, Clone)]
pub struct UsageRow {
    pub slot: String,
    pub minute: i64,
    pub uses: i64,
    pub last_at: Option<OffsetDateTime>,
    pub last_client: Option<String>,
    pub retired: i64,
    pub retired_at: Option<OffsetDateTime>,
    pub retired_client: Option<String>,
}

/// A key a regeneration replaced, as the data plane's index needs it.
pub struct RetiredKey {
    pub resource: Uuid,
    pub slot: String,
    pub generation: i64,
    pub digest: [u8; 32],
    pub regenerated_at: OffsetDateTime,
    /// Until when it still opens its slot (an overlap asked for), if ever.
    pub grace_until: Option<OffsetDateTime>,
    /// The key itself, only during an overlap of a type whose clients sign with it.
    pub secret: Option<Secret>,
}

/// The rotation state the index needs, for some resources.
#[derive(Default)]
pub struct SlotControls {
    /// Disabled slots: resource and slot name.
    pub disabled: Vec<(Uuid, String)>,
    pub retired: Vec<RetiredKey>,
}

/// One slot's rotation state, for the management API.
#[derive(Debug, Clone)]
pub struct SlotRotation {
    pub slot: String,
    pub generation: i64,
    pub created_at: OffsetDateTime,
    pub last_used: Option<OffsetDateTime>,
    pub disabled: bool,
    /// When its last regeneration happened, while a retired key of it is kept.
    pub regenerated_at: Option<OffsetDateTime>,
    /// The end of the latest overlap (possibly past).
    pub grace_until: Option<OffsetDateTime>,
}

#[async_trait]
pub trait Rotation: Send + Sync {
    /// Adds one node's counts to the stored per-minute usage (one row per resource, slot and
    /// minute; each entry at most once per call).
    async fn record_usage(&self, usage: &[SlotUsage]) -> Result<()>;

    /// For each slot (resource by internal id, slot name) whose retired keys were just presented
    /// (their counts already recorded), emits `Rekey.RetiredKeyPresented` through the outbox
    /// unless the slot had one within the last hour on any node; the guard row and the event
    /// commit together. Returns how many events were emitted.
    async fn note_retired_presentations(
        &self,
        slots: &[(Uuid, &str)],
        now: OffsetDateTime,
    ) -> Result<usize>;

    /// The stored usage rows of a resource (by internal id) from `since_minute` on.
    async fn usage(&self, resource: Uuid, since_minute: i64) -> Result<Vec<UsageRow>>;

    /// Deletes usage before `usage_before_minute`, retired keys replaced before `retired_before`
    /// whose overlap ended, remembered answers made before `remembered_before`, and the sealed key
    /// of every overlap that ended by now.
    async fn prune_rotation(
        &self,
        usage_before_minute: i64,
        retired_before: OffsetDateTime,
        remembered_before: OffsetDateTime,
    ) -> Result<()>;

    /// Disabled slots and retired keys of the given resources (all when `None`).
    async fn slot_controls(&self, only: Option<&[Uuid]>) -> Result<SlotControls>;

    /// Every slot's rotation state.
    async fn rotation_state(&self, id: &ResourceId) -> Result<(Resource, Vec<SlotRotation>)>;

    /// Disables or enables the slots, in one transaction with the audit record and a change-feed
    /// entry (so every node's index follows).
    async fn set_disabled(
        &self,
        id: &ResourceId,
        slots: &[&'static Slot],
        disabled: bool,
        audit: &AuditRecord,
    ) -> Result<()>;

    /// Ends the slots' overlaps now; whether one was running.
    async fn end_grace(
        &self,
        id: &ResourceId,
        slots: &[&'static Slot],
        audit: &AuditRecord,
    ) -> Result<bool>;

    /// The answer remembered under the token, unless made before `since`.
    async fn remembered(
        &self,
        principal: &str,
        kind: &str,
        token: &str,
        since: OffsetDateTime,
    ) -> Result<Option<Remembered>>;
}

/// The associated data a remembered answer is sealed to.
pub(crate) fn remember_context(principal: &str, kind: &str, token: &str) -> String {
    format!("idempotency/{principal}/{kind}/{token}")
}

/// Expands to a backend's rotation hooks (called from `store_impl`'s regeneration) and its
/// [`Rotation`] implementation. The backend defines `USAGE_ROWS`: a `FROM` item named `u` that
/// reads `$1`, a JSON array of [`SlotUsage`] objects with the columns' names, as rows.
macro_rules! rotation_impl {
    (store: $store:ty, conn: $conn:ty, reads: $reads:ident, writes: $writes:ident) => {
        impl $store {
            /// Keeps the replaced key of `slot` (its digest; its sealed key during an overlap of a
            /// signing type), ending an overlap of the slot still running.
            async fn retire_slot(
                conn: &mut $conn,
                resource: &rekey_core::Resource,
                slot: &'static rekey_core::providers::Slot,
                now: i64,
                grace: Option<time::Duration>,
            ) -> $crate::Result<()> {
                let internal = resource.internal_id.to_string();
                sqlx::query(
                    "UPDATE retired_keys SET grace_until = $1, sealed = NULL
                     WHERE resource_id = $2 AND slot = $3 AND grace_until > $1",
                )
                .bind(now)
                .bind(&internal)
                .bind(slot.name)
                .execute(&mut *conn)
                .await?;
                let grace_until =
                    grace.map(|g| now.saturating_add((g.whole_microseconds()) as i64));
                let sealed = if grace.is_some() && resource.id.provider.signs_requests {
                    "sealed"
                } else {
                    // Typed NULL: a bare NULL is text to PostgreSQL.
                    "CASE WHEN 1 = 0 THEN sealed END"
                };
                sqlx::query(&format!(
                    "INSERT INTO retired_keys (resource_id, slot, generation, digest, regenerated_at, grace_until, sealed)
                     SELECT resource_id, slot, generation, digest, $1, $2, {sealed} FROM key_slots
                     WHERE resource_id = $3 AND slot = $4
                     ON CONFLICT (resource_id, slot, generation) DO NOTHING"
                ))
                .bind(now)
                .bind(grace_until)
                .bind(&internal)
                .bind(slot.name)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            /// Claims the idempotency token for this transaction; fails when an unexpired answer
            /// holds it (or another transaction claimed it and committed first).
            async fn claim_token(
                conn: &mut $conn,
                remember: &$crate::rotation::Remember<'_>,
                now: i64,
            ) -> $crate::Result<()> {
                let claimed = sqlx::query(
                    "INSERT INTO idempotency (principal_id, kind, token, fingerprint, sealed, created_at)
                     VALUES ($1, $2, $3, $4, NULL, $5)
                     ON CONFLICT (principal_id, kind, token) DO UPDATE
                     SET fingerprint = excluded.fingerprint, sealed = NULL, created_at = excluded.created_at
                     WHERE idempotency.created_at < $6",
                )
                .bind(remember.principal)
                .bind(remember.kind)
                .bind(remember.token)
                .bind(&remember.fingerprint[..])
                .bind(now)
                .bind($crate::columns::to_micros(remember.expired_before))
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if claimed == 0 {
                    return Err($crate::StoreError::IdempotencyTaken);
                }
                Ok(())
            }

            /// Seals the committed answer under the claimed token.
            async fn keep_answer(
                &self,
                conn: &mut $conn,
                remember: &$crate::rotation::Remember<'_>,
                resource: &rekey_core::Resource,
                slots: &[rekey_core::KeySlotState],
            ) -> $crate::Result<()> {
                let answer = zeroize::Zeroizing::new((remember.answer)(resource, slots));
                let context = $crate::rotation::remember_context(
                    remember.principal,
                    remember.kind,
                    remember.token,
                );
                sqlx::query(
                    "UPDATE idempotency SET sealed = $1 WHERE principal_id = $2 AND kind = $3 AND token = $4",
                )
                .bind(self.sealer.seal_bytes(&answer, &context))
                .bind(remember.principal)
                .bind(remember.kind)
                .bind(remember.token)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::rotation::Rotation for $store {
            async fn record_usage(&self, usage: &[$crate::rotation::SlotUsage]) -> $crate::Result<()> {
                if usage.is_empty() {
                    return Ok(());
                }
                let micros = |t: Option<time::OffsetDateTime>| t.map($crate::columns::to_micros);
                let mut tx = self.$writes.begin().await?;
                for chunk in usage.chunks(1_000) {
                    let rows: Vec<serde_json::Value> = chunk
                        .iter()
                        .map(|u| {
                            serde_json::json!({
                                "resource_id": u.resource.to_string(),
                                "slot": u.slot,
                                "minute": u.minute,
                                "uses": u.uses,
                                "last_at": micros(u.last_at),
                                "last_client": u.last_client,
                                "retired": u.retired,
                                "retired_at": micros(u.retired_at),
                                "retired_client": u.retired_client,
                            })
                        })
                        .collect();
                    // A later use's client replaces an earlier one's, whichever node flushes first.
                    let query = format!(
                        "INSERT INTO key_usage (resource_id, slot, minute, uses, last_at, last_client, retired, retired_at, retired_client)
                         SELECT u.resource_id, u.slot, u.minute, u.uses, u.last_at, u.last_client, u.retired, u.retired_at, u.retired_client
                         FROM {} WHERE true
                         ON CONFLICT (resource_id, slot, minute) DO UPDATE SET
                           uses = key_usage.uses + excluded.uses,
                           retired = key_usage.retired + excluded.retired,
                           last_client = CASE WHEN excluded.last_at IS NOT NULL AND (key_usage.last_at IS NULL OR excluded.last_at >= key_usage.last_at)
                                         THEN excluded.last_client ELSE key_usage.last_client END,
                           last_at = CASE WHEN excluded.last_at IS NOT NULL AND (key_usage.last_at IS NULL OR excluded.last_at >= key_usage.last_at)
                                     THEN excluded.last_at ELSE key_usage.last_at END,
                           retired_client = CASE WHEN excluded.retired_at IS NOT NULL AND (key_usage.retired_at IS NULL OR excluded.retired_at >= key_usage.retired_at)
                                            THEN excluded.retired_client ELSE key_usage.retired_client END,
                           retired_at = CASE WHEN excluded.retired_at IS NOT NULL AND (key_usage.retired_at IS NULL OR excluded.retired_at >= key_usage.retired_at)
                                        THEN excluded.retired_at ELSE key_usage.retired_at END",
                        Self::USAGE_ROWS
                    );
                    sqlx::query(&query)
                        .bind(serde_json::Value::Array(rows).to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn note_retired_presentations(
                &self,
                slots: &[(uuid::Uuid, &str)],
                now: time::OffsetDateTime,
            ) -> $crate::Result<usize> {
                use $crate::common::StoredRow as _;
                let since = now - $crate::events::RETIRED_KEY_NOTICE_EVERY;
                let mut emitted = 0;
                for (resource, slot) in slots {
                    let internal = resource.to_string();
                    let mut tx = self.$writes.begin().await?;
                    let Some(row) = sqlx::query(
                        "SELECT r.*, g.name AS group_name, k.created_at AS k_created_at, k.generation AS k_generation
                         FROM resources r
                         JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
                         JOIN key_slots k ON k.resource_id = r.internal_id AND k.slot = $2
                         WHERE r.internal_id = $1",
                    )
                    .bind(&internal)
                    .bind(*slot)
                    .fetch_optional(&mut *tx)
                    .await?
                    else {
                        // Deleted since: nothing to tell.
                        tx.rollback().await?;
                        continue;
                    };
                    // The hourly guard: only the node whose upsert changes the row emits; a racing
                    // node's waits for this transaction and then finds the time too recent.
                    let claimed = sqlx::query(
                        "INSERT INTO retired_key_notices (resource_id, slot, at) VALUES ($1, $2, $3)
                         ON CONFLICT (resource_id, slot) DO UPDATE SET at = excluded.at
                         WHERE retired_key_notices.at <= $4",
                    )
                    .bind(&internal)
                    .bind(*slot)
                    .bind($crate::columns::to_micros(now))
                    .bind($crate::columns::to_micros(since))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if claimed == 0 {
                        tx.rollback().await?;
                        continue;
                    }
                    let first_minute = since.unix_timestamp().div_euclid(60);
                    let usage = sqlx::query(
                        "SELECT retired, retired_at, retired_client FROM key_usage
                         WHERE resource_id = $1 AND slot = $2 AND minute >= $3 AND retired > 0",
                    )
                    .bind(&internal)
                    .bind(*slot)
                    .bind(first_minute)
                    .fetch_all(&mut *tx)
                    .await?;
                    let presentations: i64 = usage.iter().map(|r| r.int("retired")).sum();
                    let last_client = usage
                        .iter()
                        .filter_map(|r| Some((r.opt_int("retired_at")?, r.opt_string("retired_client"))))
                        .max_by_key(|(at, _)| *at)
                        .and_then(|(_, client)| client);
                    let resource = $crate::common::resource_row(&row)?;
                    let regenerated_at = (row.int("k_generation") > 1)
                        .then(|| $crate::events::rfc3339($crate::columns::from_micros(row.int("k_created_at"))));
                    let data = serde_json::json!({
                        "resourceUri": resource.id.to_string(),
                        "keyName": slot,
                        "regeneratedAt": regenerated_at,
                        "presentations": presentations,
                        "lastClientAddress": last_client,
                        "subscriptionId": resource.id.subscription.to_string(),
                    });
                    let event = $crate::events::NewEvent::about(
                        $crate::events::RETIRED_KEY_PRESENTED,
                        &resource.id,
                        data,
                    );
                    Self::emit_event(&mut tx, &event).await?;
                    tx.commit().await?;
                    emitted += 1;
                }
                Ok(emitted)
            }

            async fn usage(&self, resource: uuid::Uuid, since_minute: i64) -> $crate::Result<Vec<$crate::rotation::UsageRow>> {
                use $crate::common::StoredRow as _;
                let rows = sqlx::query(
                    "SELECT * FROM key_usage WHERE resource_id = $1 AND minute >= $2 ORDER BY minute, slot",
                )
                .bind(resource.to_string())
                .bind(since_minute)
                .fetch_all(&self.$reads)
                .await?;
                let time = |v: Option<i64>| v.map($crate::columns::from_micros);
                Ok(rows
                    .iter()
                    .map(|row| $crate::rotation::UsageRow {
                        slot: row.string("slot"),
                        minute: row.int("minute"),
                        uses: row.int("uses"),
                        last_at: time(row.opt_int("last_at")),
                        last_client: row.opt_string("last_client"),
                        retired: row.int("retired"),
                        retired_at: time(row.opt_int("retired_at")),
                        retired_client: row.opt_string("retired_client"),
                    })
                    .collect())
            }

            async fn prune_rotation(
                &self,
                usage_before_minute: i64,
                retired_before: time::OffsetDateTime,
                remembered_before: time::OffsetDateTime,
            ) -> $crate::Result<()> {
                let now = $crate::columns::now_micros();
                let mut tx = self.$writes.begin().await?;
                sqlx::query("DELETE FROM key_usage WHERE minute < $1")
                    .bind(usage_before_minute)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "DELETE FROM retired_keys WHERE regenerated_at < $1 AND (grace_until IS NULL OR grace_until <= $2)",
                )
                .bind($crate::columns::to_micros(retired_before))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE retired_keys SET sealed = NULL WHERE sealed IS NOT NULL AND grace_until <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
                    .bind($crate::columns::to_micros(remembered_before))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn slot_controls(&self, only: Option<&[uuid::Uuid]>) -> $crate::Result<$crate::rotation::SlotControls> {
                use $crate::common::StoredRow as _;
                let mut conn = self.$reads.acquire().await?;
                let (disabled_rows, retired_rows) = match only {
                    None => (
                        sqlx::query("SELECT resource_id, slot FROM key_slots WHERE disabled <> 0")
                            .fetch_all(&mut *conn)
                            .await?,
                        sqlx::query("SELECT * FROM retired_keys").fetch_all(&mut *conn).await?,
                    ),
                    Some(ids) => {
                        let (mut disabled, mut retired) = (Vec::new(), Vec::new());
                        for id in ids {
                            disabled.extend(
                                sqlx::query("SELECT resource_id, slot FROM key_slots WHERE disabled <> 0 AND resource_id = $1")
                                    .bind(id.to_string())
                                    .fetch_all(&mut *conn)
                                    .await?,
                            );
                            retired.extend(
                                sqlx::query("SELECT * FROM retired_keys WHERE resource_id = $1")
                                    .bind(id.to_string())
                                    .fetch_all(&mut *conn)
                                    .await?,
                            );
                        }
                        (disabled, retired)
                    }
                };
                let mut controls = $crate::rotation::SlotControls::default();
                for row in &disabled_rows {
                    controls.disabled.push((row.uuid("resource_id")?, row.string("slot")));
                }
                for row in &retired_rows {
                    let resource = row.uuid("resource_id")?;
                    let slot = row.string("slot");
                    let generation = row.int("generation");
                    let sealed: Option<Vec<u8>> = sqlx::Row::try_get(row, "sealed")?;
                    let secret = match sealed {
                        Some(sealed) => Some(self.sealer.open(
                            &sealed,
                            &$crate::columns::seal_context(&resource, &slot, generation),
                        )?),
                        None => None,
                    };
                    controls.retired.push($crate::rotation::RetiredKey {
                        resource,
                        digest: row
                            .bytes("digest")
                            .try_into()
                            .map_err(|_| $crate::columns::corrupt("digest is not 32 bytes"))?,
                        slot,
                        generation,
                        regenerated_at: $crate::columns::from_micros(row.int("regenerated_at")),
                        grace_until: row.opt_int("grace_until").map($crate::columns::from_micros),
                        secret,
                    });
                }
                Ok(controls)
            }

            async fn rotation_state(
                &self,
                id: &rekey_core::ResourceId,
            ) -> $crate::Result<(rekey_core::Resource, Vec<$crate::rotation::SlotRotation>)> {
                use $crate::common::StoredRow as _;
                let mut conn = self.$reads.acquire().await?;
                let resource = Self::find_resource(&mut conn, id, false).await?;
                let internal = resource.internal_id.to_string();
                let slots = sqlx::query(
                    "SELECT k.slot, k.generation, k.created_at, u.used_at AS last_used_at, k.disabled
                     FROM key_slots k LEFT JOIN key_last_uses u
                       ON u.resource_id = k.resource_id AND u.slot = k.slot AND u.generation = k.generation
                     WHERE k.resource_id = $1",
                )
                .bind(&internal)
                .fetch_all(&mut *conn)
                .await?;
                let retired = sqlx::query(
                    "SELECT slot, MAX(regenerated_at) AS regenerated_at, MAX(grace_until) AS grace_until
                     FROM retired_keys WHERE resource_id = $1 GROUP BY slot",
                )
                .bind(&internal)
                .fetch_all(&mut *conn)
                .await?;
                let time = |v: Option<i64>| v.map($crate::columns::from_micros);
                let mut out: Vec<$crate::rotation::SlotRotation> = slots
                    .iter()
                    .map(|row| $crate::rotation::SlotRotation {
                        slot: row.string("slot"),
                        generation: row.int("generation"),
                        created_at: $crate::columns::from_micros(row.int("created_at")),
                        last_used: time(row.opt_int("last_used_at")),
                        disabled: row.int("disabled") != 0,
                        regenerated_at: None,
                        grace_until: None,
                    })
                    .collect();
                for row in &retired {
                    if let Some(slot) = out.iter_mut().find(|s| s.slot == row.text("slot")) {
                        slot.regenerated_at = time(row.opt_int("regenerated_at"));
                        slot.grace_until = time(row.opt_int("grace_until"));
                    }
                }
                // Catalogue order, as the wire bodies list slots.
                let order = |name: &str| {
                    resource
                        .id
                        .provider
                        .slots
                        .iter()
                        .position(|s| s.name == name)
                        .unwrap_or(usize::MAX)
                };
                out.sort_by_key(|s| order(&s.slot));
                Ok((resource, out))
            }

            async fn set_disabled(
                &self,
                id: &rekey_core::ResourceId,
                slots: &[&'static rekey_core::providers::Slot],
                disabled: bool,
                audit: &$crate::AuditRecord,
            ) -> $crate::Result<()> {
                let mut tx = self.$writes.begin().await?;
                let resource = Self::find_resource(&mut tx, id, true).await?;
                for slot in slots {
                    sqlx::query("UPDATE key_slots SET disabled = $1 WHERE resource_id = $2 AND slot = $3")
                        .bind(i64::from(disabled))
                        .bind(resource.internal_id.to_string())
                        .bind(slot.name)
                        .execute(&mut *tx)
                        .await?;
                }
                let changes = [$crate::common::Change {
                    resource: resource.internal_id,
                    slot: slots.first().map(|s| s.name),
                    change: if disabled { "disabled" } else { "enabled" },
                    at: $crate::columns::now_micros(),
                }];
                // An ARM action event, as for a regeneration (`…/disableKey/action` and so on).
                Self::emit_event(
                    &mut tx,
                    &$crate::events::NewEvent::arm($crate::events::RESOURCE_ACTION_SUCCESS, &resource.id, audit),
                )
                .await?;
                Self::append_log(&mut tx, &changes, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn end_grace(
                &self,
                id: &rekey_core::ResourceId,
                slots: &[&'static rekey_core::providers::Slot],
                audit: &$crate::AuditRecord,
            ) -> $crate::Result<bool> {
                let mut tx = self.$writes.begin().await?;
                let resource = Self::find_resource(&mut tx, id, true).await?;
                let now = $crate::columns::now_micros();
                let mut ended = 0;
                for slot in slots {
                    ended += sqlx::query(
                        "UPDATE retired_keys SET grace_until = $1, sealed = NULL
                         WHERE resource_id = $2 AND slot = $3 AND grace_until > $1",
                    )
                    .bind(now)
                    .bind(resource.internal_id.to_string())
                    .bind(slot.name)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                let changes = [$crate::common::Change {
                    resource: resource.internal_id,
                    slot: slots.first().map(|s| s.name),
                    change: "grace-ended",
                    at: now,
                }];
                // An ARM action event, as for a regeneration (`…/disableKey/action` and so on).
                Self::emit_event(
                    &mut tx,
                    &$crate::events::NewEvent::arm($crate::events::RESOURCE_ACTION_SUCCESS, &resource.id, audit),
                )
                .await?;
                Self::append_log(&mut tx, &changes, audit).await?;
                tx.commit().await?;
                Ok(ended > 0)
            }

            async fn remembered(
                &self,
                principal: &str,
                kind: &str,
                token: &str,
                since: time::OffsetDateTime,
            ) -> $crate::Result<Option<$crate::rotation::Remembered>> {
                use $crate::common::StoredRow as _;
                let row = sqlx::query(
                    "SELECT fingerprint, sealed, created_at FROM idempotency
                     WHERE principal_id = $1 AND kind = $2 AND token = $3 AND created_at >= $4",
                )
                .bind(principal)
                .bind(kind)
                .bind(token)
                .bind($crate::columns::to_micros(since))
                .fetch_optional(&self.$reads)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let sealed: Option<Vec<u8>> = sqlx::Row::try_get(&row, "sealed")?;
                // A claim is sealed in its own transaction, so a visible row has its answer.
                let sealed = sealed.ok_or_else(|| $crate::columns::corrupt("a remembered answer without its body"))?;
                let answer = self.sealer.open_bytes(
                    &sealed,
                    &$crate::rotation::remember_context(principal, kind, token),
                )?;
                Ok(Some($crate::rotation::Remembered {
                    fingerprint: row
                        .bytes("fingerprint")
                        .try_into()
                        .map_err(|_| $crate::columns::corrupt("fingerprint is not 32 bytes"))?,
                    answer,
                    created_at: $crate::columns::from_micros(row.int("created_at")),
                }))
            }
        }
    };
}
