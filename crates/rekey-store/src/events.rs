//! Owns the records of rekey's events: Event Grid-shaped event subscriptions, the events a change
//! emits ([`NewEvent`], written to the outbox in the change's own transaction by the backends'
//! `emit_event`), the deliveries a node claims from the outbox, and their dead letters.
//!
//! An event's `data` is ARM's data object (`operationName`, `resourceUri`, `authorization`,
//! `claims`, `correlationId`, `status`, …) built from the change's audit record: names, ids and
//! outcomes only, so an event can never carry a key. The envelope (Event Grid's or CloudEvents 1.0)
//! is made at delivery, in the schema the receiving subscription asked for.

use rekey_core::{ResourceId, Secret};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::AuditRecord;

/// ARM's event for a successful action on a resource (`regenerateKey/action`, …).
pub const RESOURCE_ACTION_SUCCESS: &str = "Microsoft.Resources.ResourceActionSuccess";
/// ARM's event for a resource created or updated.
pub const RESOURCE_WRITE_SUCCESS: &str = "Microsoft.Resources.ResourceWriteSuccess";
/// ARM's event for a resource deleted.
pub const RESOURCE_DELETE_SUCCESS: &str = "Microsoft.Resources.ResourceDeleteSuccess";
/// rekey's event for a key slot whose key has grown older than its maximum age.
pub const KEY_AGE_EXCEEDED: &str = "Rekey.KeyAgeExceeded";
/// rekey's event for a slot's retired (regenerated) key presented on the data plane: at most one
/// per slot an hour, over every node.
pub const RETIRED_KEY_PRESENTED: &str = "Rekey.RetiredKeyPresented";
/// At most one [`RETIRED_KEY_PRESENTED`] per slot within this.
pub const RETIRED_KEY_NOTICE_EVERY: time::Duration = time::Duration::hours(1);

/// `Succeeded`: the endpoint answered the validation handshake and receives events.
pub const PROVISIONED: &str = "Succeeded";
/// The endpoint did not answer the handshake; like Azure, the subscription receives nothing.
pub const AWAITING_MANUAL_ACTION: &str = "AwaitingManualAction";

/// An event to write to the outbox with the change it reports.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    /// The ARM subscription the subject is in (its subscriptions' webhooks may receive it).
    pub subscription: String,
    /// The resource id the event is about.
    pub subject: String,
    pub event_type: String,
    pub event_time: OffsetDateTime,
    pub data: Value,
}

impl NewEvent {
    /// ARM's event of `event_type` about `resource`, from the audit record of the change: the
    /// action is the `operationName`, the caller's principal the claims, the request id the
    /// correlation id.
    pub fn arm(event_type: &str, resource: &ResourceId, audit: &AuditRecord) -> Self {
        let uri = resource.to_string();
        let subscription = resource.subscription.to_string();
        let data = json!({
            "authorization": {
                "scope": uri,
                "action": audit.action,
                "evidence": {
                    "principalId": audit.principal_id,
                    "principalType": "ServicePrincipal",
                },
            },
            "claims": {
                "http://schemas.microsoft.com/identity/claims/objectidentifier": audit.principal_id,
                "oid": audit.principal_id,
                "ipaddr": audit.source,
            },
            "correlationId": audit.request_id,
            "operationName": audit.action,
            "resourceProvider": resource.provider.namespace,
            "resourceUri": uri,
            "status": "Succeeded",
            "subscriptionId": subscription,
        });
        Self::about(event_type, resource, data)
    }

    /// An event of `event_type` about `resource` with `data`.
    pub fn about(event_type: &str, resource: &ResourceId, data: Value) -> Self {
        Self {
            id: Uuid::new_v4(),
            subscription: resource.subscription.to_string(),
            subject: resource.to_string(),
            event_type: event_type.to_string(),
            event_time: OffsetDateTime::now_utc(),
            data,
        }
    }
}

/// An event subscription: a webhook receiving the events of resources at or below `scope`.
#[derive(Debug, Clone)]
pub struct EventSubscription {
    pub id: Uuid,
    /// The ARM subscription `scope` is in.
    pub subscription: String,
    /// `/subscriptions/{s}`, a resource group or a resource id, as stored.
    pub scope: String,
    pub name: String,
    pub endpoint_url: String,
    /// `None`: every event type.
    pub included_event_types: Option<Vec<String>>,
    /// `EventGridSchema` or `CloudEventSchemaV1_0`.
    pub delivery_schema: String,
    /// Attempts before an event is dead-lettered (Event Grid's `retryPolicy.maxDeliveryAttempts`).
    pub max_attempts: i64,
    /// Minutes an event is retried before it is dead-lettered
    /// (`retryPolicy.eventTimeToLiveInMinutes`).
    pub ttl_minutes: i64,
    /// [`PROVISIONED`] or [`AWAITING_MANUAL_ACTION`].
    pub provisioning_state: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl EventSubscription {
    /// Whether an event of `event_type` about `subject` goes to this subscription.
    pub fn wants(&self, subject: &str, event_type: &str) -> bool {
        let scope = self.scope.trim_end_matches('/').to_ascii_lowercase();
        let subject = subject.to_ascii_lowercase();
        let below = subject == scope || subject.starts_with(&format!("{scope}/"));
        below
            && self.provisioning_state == PROVISIONED
            && self
                .included_event_types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t.eq_ignore_ascii_case(event_type)))
    }
}

/// An event as stored in the outbox.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: Uuid,
    pub subscription: String,
    pub subject: String,
    pub event_type: String,
    pub event_time: OffsetDateTime,
    pub data: Value,
}

/// One event for one subscription, claimed by a node for delivery.
pub struct Delivery {
    pub event: StoredEvent,
    pub target: EventSubscription,
    /// The subscription's signing secret, for `x-rekey-signature`.
    pub secret: Secret,
    /// Attempts made before this one (Event Grid's `aeg-delivery-count`).
    pub attempts: i64,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event.id)
            .field("target", &self.target.id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// What became of a claimed delivery.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    /// The endpoint took it: it leaves the outbox.
    Delivered,
    /// Failed; tried again at `at`.
    Retry { at: OffsetDateTime, error: String },
    /// Failed for the last time: kept as a dead letter, with Event Grid's reason
    /// (`MaxDeliveryAttemptsExceeded`, `TimeToLiveExceeded`, `DeliveryRefused`).
    Dead { reason: String, error: String },
}

/// An event that could not be delivered within its subscription's retry policy.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub event: StoredEvent,
    pub attempts: i64,
    /// Why it was given up (see [`DeliveryOutcome::Dead`]).
    pub reason: String,
    pub last_error: String,
    pub dead_at: OffsetDateTime,
}

/// A key slot whose key is older than the maximum age that applies to it, found by the sweep.
#[derive(Debug, Clone)]
pub struct OverdueKey {
    pub resource: ResourceId,
    pub slot: String,
    pub generation: i64,
    pub created_at: OffsetDateTime,
    pub max_age_days: i64,
}

pub use rekey_core::resource::MAX_KEY_AGE_PROPERTY;

/// The maximum key age that applies to a resource with `settings`, else the subscription's default.
pub fn max_key_age_days(
    settings: &serde_json::Map<String, Value>,
    default: Option<i64>,
) -> Option<i64> {
    settings
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(MAX_KEY_AGE_PROPERTY))
        .and_then(|(_, v)| v.as_i64())
        .or(default)
}

/// Whole days between `created` and `now`.
pub fn age_days(created: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (now - created).whole_days().max(0)
}

/// A time as ARM writes it: RFC 3339.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("an OffsetDateTime formats as RFC 3339")
}
