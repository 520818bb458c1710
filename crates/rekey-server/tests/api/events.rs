//! Events: event subscriptions in Event Grid's shape, the validation handshake, ARM's events for
//! regenerations, writes and deletes, signed at-least-once delivery that survives SIGKILL, one
//! delivery per event across three PostgreSQL nodes, dead letters, and key-age events. Each test
//! receives on a webhook of its own on 127.0.0.1 ([`Receiver`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

crate::backend_tests!(
    a_slow_receiver_gets_at_most_four_deliveries_at_once_and_all_of_them,
    each_regenerate_sends_one_signed_resource_action_event_after_its_answer,
    creates_and_deletes_send_write_and_delete_events_and_take_the_resources_own_subscriptions,
    a_receiver_that_fails_twice_gets_the_third_try,
    an_event_committed_before_kill_9_is_delivered_after_restart,
    an_endpoint_that_answers_the_handshake_wrongly_never_receives_events,
    an_event_never_accepted_is_dead_lettered_and_shown,
    an_http_endpoint_off_this_machine_is_refused_and_nothing_is_created,
    a_key_past_its_max_age_is_overdue_and_emits_one_key_age_exceeded,
    list_key_usage_shows_each_slots_age_and_overdue_as_list_keys_does,
    a_presented_retired_key_sends_one_retired_key_presented_an_hour_without_the_key,
    a_max_key_age_outside_1_to_3650_is_refused,
    only_owner_and_contributor_may_create_event_subscriptions,
    disabling_enabling_and_ending_an_overlap_send_their_own_action_events,
);

const EG_VERSION: &str = "2025-02-15";
/// The version `az eventgrid` sends.
const AZ_EG_VERSION: &str = "2021-10-15-preview";

/// Settings that make delivery quick enough for tests.
const FAST: &[(&str, &str)] = &[
    ("REKEY_EVENT_RETRY_BASE_MS", "100"),
    ("REKEY_EVENT_POLL_MS", "100"),
    ("REKEY_KEY_AGE_SWEEP_MS", "200"),
];

/// One request a receiver got.
#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Behaviour {
    /// Answers the handshake with the wrong code.
    wrong_handshake: bool,
    /// Answers 503 to every notification (as if down).
    down: bool,
    /// Answers 400 to every notification (refuses it).
    refuse: bool,
    /// Takes this long to answer each notification.
    slow: Duration,
    /// Notifications being answered now, and the most there ever were at once.
    in_flight: u32,
    most_in_flight: u32,
    /// Answers 500 to this many notifications first.
    fail_next: u32,
    handshakes: u32,
    /// Every notification, including refused ones.
    attempts: Vec<Received>,
    /// Notifications answered 200.
    accepted: Vec<Received>,
}

/// A webhook on 127.0.0.1 that answers Event Grid's handshake and records notifications.
struct Receiver {
    url: String,
    state: Arc<Mutex<Behaviour>>,
    server: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(state): State<Arc<Mutex<Behaviour>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let slow = {
        let mut s = state.lock().unwrap();
        s.in_flight += 1;
        s.most_in_flight = s.most_in_flight.max(s.in_flight);
        s.slow
    };
    if !slow.is_zero() {
        tokio::time::sleep(slow).await;
    }
    let mut s = state.lock().unwrap();
    s.in_flight -= 1;
    answer(&mut s, headers, body)
}

/// What the receiver answers, as `Behaviour` says, recording the request.
fn answer(s: &mut Behaviour, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let kind = headers
        .get("aeg-event-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if kind == "SubscriptionValidation" {
        s.handshakes += 1;
        let events: Value = serde_json::from_slice(&body).unwrap();
        let code = events[0]["data"]["validationCode"].as_str().unwrap();
        let answer = if s.wrong_handshake {
            "not-the-code".to_string()
        } else {
            code.to_string()
        };
        return (
            StatusCode::OK,
            json!({ "validationResponse": answer }).to_string(),
        );
    }
    let got = Received { headers, body };
    s.attempts.push(got.clone());
    if s.down {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    }
    if s.refuse {
        return (StatusCode::BAD_REQUEST, String::new());
    }
    if s.fail_next > 0 {
        s.fail_next -= 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
    }
    s.accepted.push(got);
    (StatusCode::OK, String::new())
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Self {
        let state = Arc::new(Mutex::new(behaviour));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, server }
    }

    fn accepted(&self) -> Vec<Received> {
        self.state.lock().unwrap().accepted.clone()
    }

    fn attempts(&self) -> Vec<Received> {
        self.state.lock().unwrap().attempts.clone()
    }

    fn set(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.state.lock().unwrap());
    }

    /// Waits until `count` notifications were accepted (at most `patience`); returns them all.
    async fn until_accepted(&self, count: usize, patience: Duration) -> Vec<Received> {
        let deadline = Instant::now() + patience;
        loop {
            let got = self.accepted();
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn subscription_path(scope: &str, name: &str, version: &str) -> String {
    format!("{scope}/providers/Microsoft.EventGrid/eventSubscriptions/{name}?api-version={version}")
}

/// Creates an event subscription at `scope` sending to `url`; returns the answer's status and body.
async fn subscribe(
    s: &TestServer,
    scope: &str,
    name: &str,
    url: &str,
    extra: Value,
) -> (u16, Value) {
    let mut properties = json!({
        "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url}},
    });
    for (k, v) in extra.as_object().unwrap() {
        properties[k] = v.clone();
    }
    s.call(
        Method::PUT,
        &subscription_path(scope, name, EG_VERSION),
        Some(&json!({ "properties": properties }).to_string()),
    )
    .await
}

/// The signing secret of a subscription just created.
fn secret_of(created: &Value) -> String {
    created["properties"]["x-rekey-signingSecret"]
        .as_str()
        .expect("the creating PUT shows the signing secret")
        .to_string()
}

fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, body).as_ref())
}

/// Every key value in a `listKeys` or `regenerateKey` answer.
fn keys_in(answer: &Value) -> Vec<String> {
    ["key1", "key2"]
        .iter()
        .filter_map(|k| answer[k].as_str().map(str::to_string))
        .collect()
}

fn assert_no_key_in(events: &[Received], keys: &[String]) {
    for event in events {
        let text = String::from_utf8_lossy(&event.body);
        for key in keys {
            assert!(!text.contains(key.as_str()), "an event carries a key");
        }
    }
}

async fn each_regenerate_sends_one_signed_resource_action_event_after_its_answer() {
    let s = TestServer::start_with("info", FAST).await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let resource = s.account_path("rg", "acct");
    let receiver = Receiver::start(Behaviour::default()).await;
    let (status, created) = subscribe(
        &s,
        &resource,
        "rotations",
        &receiver.url,
        json!({"filter": {"includedEventTypes": ["Microsoft.Resources.ResourceActionSuccess"]}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");
    assert_eq!(created["properties"]["topic"], resource.as_str());
    let secret = secret_of(&created);
    // Shown once: a read does not show it again.
    let (_, shown) = s
        .call(
            Method::GET,
            &subscription_path(&resource, "rotations", EG_VERSION),
            None,
        )
        .await;
    assert!(
        shown["properties"].get("x-rekey-signingSecret").is_none(),
        "{shown}"
    );

    let (_, listed) = s.list_keys("rg", "acct").await;
    let mut keys = keys_in(&listed);
    for n in 1..=3 {
        let (status, answer) = s.regenerate("rg", "acct", "Key1").await;
        assert_eq!(status, 200, "{answer}");
        keys.extend(keys_in(&answer));
        // Each event arrives after its regeneration answered, one per regeneration.
        let got = receiver.until_accepted(n, Duration::from_secs(10)).await;
        assert_eq!(got.len(), n, "one event per regeneration");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got = receiver.accepted();
    assert_eq!(got.len(), 3, "no event twice");
    assert_no_key_in(&got, &keys);

    let mut ids = Vec::new();
    for event in &got {
        assert_eq!(event.header("aeg-event-type"), "Notification");
        assert_eq!(event.header("aeg-delivery-count"), "0");
        assert_eq!(event.header("aeg-subscription-name"), "ROTATIONS");
        assert_eq!(
            event.header("x-rekey-signature"),
            signature(&secret, &event.body),
            "the signature is the HMAC of the body under the subscription's secret"
        );
        let body = event.json();
        let e = &body[0];
        assert_eq!(body.as_array().unwrap().len(), 1);
        assert_eq!(e["eventType"], "Microsoft.Resources.ResourceActionSuccess");
        assert_eq!(e["topic"], s.sub_path().as_str());
        assert_eq!(e["subject"], resource.as_str());
        assert_eq!(e["metadataVersion"], "1");
        assert!(e["dataVersion"].is_string() && e["eventTime"].is_string());
        let data = &e["data"];
        assert_eq!(
            data["operationName"],
            "Microsoft.CognitiveServices/accounts/regenerateKey/action"
        );
        assert_eq!(data["resourceUri"], resource.as_str());
        assert_eq!(data["status"], "Succeeded");
        assert_eq!(data["authorization"]["action"], data["operationName"]);
        assert!(data["correlationId"]
            .as_str()
            .is_some_and(|c| !c.is_empty()));
        assert!(data["claims"].is_object());
        ids.push(e["id"].as_str().unwrap().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every event has its own id");
}

async fn creates_and_deletes_send_write_and_delete_events_and_take_the_resources_own_subscriptions()
{
    let s = TestServer::start_with("info", FAST).await;
    s.create_group("rg").await;
    let receiver = Receiver::start(Behaviour::default()).await;
    let (status, created) = subscribe(
        &s,
        &s.sub_path(),
        "everything",
        &receiver.url,
        json!({"eventDeliverySchema": "CloudEventSchemaV1_0"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    s.create_account("rg", "acct").await;
    let resource = s.account_path("rg", "acct");
    let (status, _) = subscribe(&s, &resource, "own", &receiver.url, json!({})).await;
    assert_eq!(status, 201);
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!("{resource}?api-version={CS_VERSION}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let got = receiver.until_accepted(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    let types: Vec<Value> = got.iter().map(|r| r.json()["type"].clone()).collect();
    assert_eq!(
        types,
        [
            json!("Microsoft.Resources.ResourceWriteSuccess"),
            json!("Microsoft.Resources.ResourceDeleteSuccess")
        ]
    );
    for event in &got {
        let e = event.json();
        assert!(event
            .header("content-type")
            .starts_with("application/cloudevents+json"));
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["source"], s.sub_path().as_str());
        assert_eq!(e["subject"], resource.as_str());
        assert_eq!(e["data"]["resourceUri"], resource.as_str());
    }
    assert_eq!(
        got[1].json()["data"]["operationName"],
        "Microsoft.CognitiveServices/accounts/delete"
    );
    // The resource's own subscription went with it: one made again under the name has none.
    s.create_account("rg", "acct").await;
    let (_, listed) = s
        .call(
            Method::GET,
            &format!("{resource}/providers/Microsoft.EventGrid/eventSubscriptions?api-version={EG_VERSION}"),
            None,
        )
        .await;
    assert_eq!(listed["value"], json!([]));
}

async fn a_receiver_that_fails_twice_gets_the_third_try() {
    let s = TestServer::start_with("info", FAST).await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let receiver = Receiver::start(Behaviour {
        fail_next: 2,
        ..Behaviour::default()
    })
    .await;
    let (status, _) = subscribe(
        &s,
        &s.account_path("rg", "acct"),
        "flaky",
        &receiver.url,
        json!({}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = s.regenerate("rg", "acct", "Key2").await;
    assert_eq!(status, 200);
    let got = receiver.until_accepted(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1, "the third try is accepted");
    let counts: Vec<String> = receiver
        .attempts()
        .iter()
        .map(|a| a.header("aeg-delivery-count").to_string())
        .collect();
    assert_eq!(counts, ["0", "1", "2"]);
    let ids: Vec<Value> = receiver
        .attempts()
        .iter()
        .map(|a| a.json()[0]["id"].clone())
        .collect();
    assert!(
        ids.iter().all(|id| id == &ids[0]),
        "the same event each time"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.accepted().len(), 1, "not sent again once accepted");
}

async fn a_slow_receiver_gets_at_most_four_deliveries_at_once_and_all_of_them() {
    let s = TestServer::start_with("info", FAST).await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let receiver = Receiver::start(Behaviour {
        slow: Duration::from_millis(100),
        ..Behaviour::default()
    })
    .await;
    let (status, _) = subscribe(&s, &s.sub_path(), "slow", &receiver.url, json!({})).await;
    assert_eq!(status, 201);
    for _ in 0..20 {
        let (status, _) = s.regenerate("rg", "acct", "Key1").await;
        assert_eq!(status, 200);
    }
    let got = receiver.until_accepted(20, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 20);
    let most = receiver.state.lock().unwrap().most_in_flight;
    assert!((2..=4).contains(&most), "{most} deliveries at once");
}

async fn an_event_committed_before_kill_9_is_delivered_after_restart() {
    let mut s = TestServer::start_with("info", FAST).await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let receiver = Receiver::start(Behaviour::default()).await;
    let (status, _) = subscribe(
        &s,
        &s.account_path("rg", "acct"),
        "durable",
        &receiver.url,
        json!({}),
    )
    .await;
    assert_eq!(status, 201);
    receiver.set(|b| b.down = true);
    let (status, _) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200);
    // The event is committed and its first delivery failed (and was recorded, so no lease is
    // left to run out): only the outbox holds it now.
    let deadline = Instant::now() + Duration::from_secs(10);
    let recorded =
        "SELECT COUNT(*) FROM event_deliveries WHERE attempts >= 1 AND lease_owner IS NULL";
    while s.sql_i64(recorded).await == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!receiver.attempts().is_empty(), "a delivery was tried");
    assert!(receiver.accepted().is_empty());
    s.kill_and_restart();
    receiver.set(|b| b.down = false);
    let got = receiver.until_accepted(1, Duration::from_secs(90)).await;
    assert_eq!(got.len(), 1, "delivered after the restart");
    assert_eq!(
        got[0].json()[0]["eventType"],
        "Microsoft.Resources.ResourceActionSuccess"
    );
}

async fn an_endpoint_that_answers_the_handshake_wrongly_never_receives_events() {
    let s = TestServer::start_with("info", FAST).await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let resource = s.account_path("rg", "acct");
    let wrong = Receiver::start(Behaviour {
        wrong_handshake: true,
        ..Behaviour::default()
    })
    .await;
    let right = Receiver::start(Behaviour::default()).await;
    let (status, created) = subscribe(&s, &resource, "wrong", &wrong.url, json!({})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["properties"]["provisioningState"],
        "AwaitingManualAction"
    );
    assert_eq!(wrong.state.lock().unwrap().handshakes, 1);
    let (status, created) = subscribe(&s, &resource, "right", &right.url, json!({})).await;
    assert_eq!(status, 201);
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");

    let (status, _) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200);
    assert_eq!(
        right.until_accepted(1, Duration::from_secs(10)).await.len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        wrong.attempts().is_empty(),
        "an unvalidated endpoint gets nothing"
    );
    let (_, shown) = s
        .call(
            Method::GET,
            &subscription_path(&resource, "wrong", AZ_EG_VERSION),
            None,
        )
        .await;
    assert_eq!(
        shown["properties"]["provisioningState"],
        "AwaitingManualAction"
    );
}

/// Waits until the subscription `name` at `scope` has a dead letter (at most 15 s); returns the list.
async fn dead_letters_of(s: &TestServer, scope: &str, name: &str) -> Value {
    let path = format!(
        "{scope}/providers/Microsoft.EventGrid/eventSubscriptions/{name}/x-rekey-deadLetters?api-version={EG_VERSION}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = s.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        if !body["value"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_event_never_accepted_is_dead_lettered_and_shown() {
    let s = TestServer::start_with("info", FAST).await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let resource = s.account_path("rg", "acct");
    let down = Receiver::start(Behaviour::default()).await;
    let refusing = Receiver::start(Behaviour::default()).await;
    let policy = json!({"retryPolicy": {"maxDeliveryAttempts": 2, "eventTimeToLiveInMinutes": 60}});
    let (status, _) = subscribe(&s, &resource, "doomed", &down.url, policy.clone()).await;
    assert_eq!(status, 201);
    let (status, _) = subscribe(&s, &resource, "refused", &refusing.url, policy).await;
    assert_eq!(status, 201);
    down.set(|b| b.down = true);
    refusing.set(|b| b.refuse = true);
    let (status, _) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200);

    let letters = dead_letters_of(&s, &resource, "doomed").await;
    let value = letters["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{letters}");
    assert_eq!(
        value[0]["eventType"],
        "Microsoft.Resources.ResourceActionSuccess"
    );
    assert_eq!(value[0]["subject"], resource.as_str());
    assert_eq!(value[0]["deliveryAttempts"], 2);
    assert_eq!(value[0]["deadLetterReason"], "MaxDeliveryAttemptsExceeded");
    assert_eq!(down.attempts().len(), 2, "no attempt past the policy");

    // A 400 is Event Grid's "do not retry": dead after the first attempt.
    let letters = dead_letters_of(&s, &resource, "refused").await;
    let value = letters["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{letters}");
    assert_eq!(value[0]["deliveryAttempts"], 1);
    assert_eq!(value[0]["deadLetterReason"], "DeliveryRefused");
    assert_eq!(refusing.attempts().len(), 1);
}

async fn an_http_endpoint_off_this_machine_is_refused_and_nothing_is_created() {
    let s = TestServer::start().await;
    let (status, body) = subscribe(
        &s,
        &s.sub_path(),
        "plain",
        "http://hooks.example.com/x",
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("properties.destination.properties.endpointUrl"),
        "{message}"
    );
    let (status, listed) = s
        .call(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.EventGrid/eventSubscriptions?api-version={AZ_EG_VERSION}",
                s.sub_path()
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["value"], json!([]));
}

/// Moves `slot`'s key creation time `days` into the past, in the test's own database.
async fn backdate(s: &TestServer, slot: &str, days: i64) {
    let micros = days * 86_400 * 1_000_000;
    s.sql_execute(&format!(
        "UPDATE key_slots SET created_at = created_at - {micros} WHERE slot = '{slot}'"
    ))
    .await;
}

async fn a_key_past_its_max_age_is_overdue_and_emits_one_key_age_exceeded() {
    let s = TestServer::start_with("info", FAST).await;
    s.create_group("rg").await;
    let receiver = Receiver::start(Behaviour::default()).await;
    let (status, _) = subscribe(
        &s,
        &s.sub_path(),
        "ages",
        &receiver.url,
        json!({"filter": {"includedEventTypes": ["Rekey.KeyAgeExceeded"]}}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = s
        .call(
            Method::PUT,
            &format!("{}?api-version={CS_VERSION}", s.account_path("rg", "acct")),
            Some(r#"{"location":"westus","kind":"TextAnalytics","sku":{"name":"S0"},"properties":{"x-rekey-maxKeyAgeDays":1}}"#),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, fresh) = s.list_keys("rg", "acct").await;
    assert_eq!(
        fresh["x-rekey-keyAge"]["key1"],
        json!({"ageDays": 0, "overdue": false, "maxKeyAgeDays": 1})
    );

    backdate(&s, "key1", 2).await;
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert_eq!(
        listed["x-rekey-keyAge"]["key1"],
        json!({"ageDays": 2, "overdue": true, "maxKeyAgeDays": 1})
    );
    assert_eq!(listed["x-rekey-keyAge"]["key2"]["overdue"], false);

    let got = receiver.until_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    // Several more sweeps pass: still one event for this key.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let got = receiver.accepted();
    assert_eq!(got.len(), 1, "once per slot and key generation");
    let e = &got[0].json()[0];
    assert_eq!(e["eventType"], "Rekey.KeyAgeExceeded");
    assert_eq!(e["subject"], s.account_path("rg", "acct").as_str());
    assert_eq!(e["data"]["keyName"], "key1");
    assert_eq!(e["data"]["maxKeyAgeDays"], 1);
    assert_no_key_in(&got, &keys_in(&listed));

    // A new key is a new generation: young again, and no further event.
    let (status, _) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200);
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert_eq!(listed["x-rekey-keyAge"]["key1"]["overdue"], false);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.accepted().len(), 1);
}

/// `listKeyUsage`'s entry for `key_name` (`Key1`, `Key2`) of the account `name`.
async fn usage_of(s: &TestServer, name: &str, key_name: &str) -> Value {
    let (status, body) = s
        .call(
            Method::POST,
            &format!(
                "{}/listKeyUsage?api-version={CS_VERSION}",
                s.account_path("rg", name)
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["keyName"] == key_name)
        .cloned()
        .unwrap_or_else(|| panic!("no {key_name} in {body}"))
}

async fn list_key_usage_shows_each_slots_age_and_overdue_as_list_keys_does() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let (status, body) = s
        .call(
            Method::PUT,
            &format!("{}?api-version={CS_VERSION}", s.account_path("rg", "acct")),
            Some(r#"{"location":"westus","kind":"TextAnalytics","sku":{"name":"S0"},"properties":{"x-rekey-maxKeyAgeDays":1}}"#),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    s.create_account("rg", "free").await;
    backdate(&s, "key1", 2).await;

    let old = usage_of(&s, "acct", "Key1").await;
    assert_eq!(
        (&old["ageDays"], &old["overdue"], &old["maxKeyAgeDays"]),
        (&json!(2), &json!(true), &json!(1)),
        "{old}"
    );
    let young = usage_of(&s, "acct", "Key2").await;
    assert_eq!(
        (
            &young["ageDays"],
            &young["overdue"],
            &young["maxKeyAgeDays"]
        ),
        (&json!(0), &json!(false), &json!(1)),
        "{young}"
    );
    // The same judgement as listKeys'.
    let (_, listed) = s.list_keys("rg", "acct").await;
    assert_eq!(listed["x-rekey-keyAge"]["key1"]["overdue"], old["overdue"]);
    assert_eq!(listed["x-rekey-keyAge"]["key1"]["ageDays"], old["ageDays"]);

    // Without a maximum (neither the resource's nor a policy), no key is overdue, however old.
    let unbounded = usage_of(&s, "free", "Key1").await;
    assert_eq!(
        (
            &unbounded["ageDays"],
            &unbounded["overdue"],
            &unbounded["maxKeyAgeDays"]
        ),
        (&json!(2), &json!(false), &Value::Null),
        "{unbounded}"
    );
    // A subscription policy applies to the resource without its own maximum.
    let (status, body) = s
        .call(
            Method::PUT,
            &format!(
                "{}/providers/Rekey/keyPolicy?api-version=2026-01-01",
                s.sub_path()
            ),
            Some(r#"{"properties":{"maxKeyAgeDays":1}}"#),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let policed = usage_of(&s, "free", "Key1").await;
    assert_eq!(
        (&policed["overdue"], &policed["maxKeyAgeDays"]),
        (&json!(true), &json!(1)),
        "{policed}"
    );
}

/// Presents `key` on the account's data plane `times` times from `client`; each is refused 401 as
/// a retired key.
async fn present_retired(s: &TestServer, path: &str, key: &str, client: &str, times: usize) {
    for i in 0..times {
        let response = s
            .client
            .get(s.url(path))
            .header("Ocp-Apim-Subscription-Key", key)
            .header("X-Forwarded-For", client)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 401, "presentation {i}: {body}");
        assert!(body.contains("regenerated"), "{body}");
    }
}

async fn a_presented_retired_key_sends_one_retired_key_presented_an_hour_without_the_key() {
    // The periodic flush is slowed so listKeyUsage (which flushes this node's counts first) decides
    // when counts are written: each batch of presentations is then noted whole.
    let env: Vec<(&str, &str)> = FAST
        .iter()
        .copied()
        .chain([
            ("REKEY_USAGE_FLUSH_MS", "600000"),
            ("REKEY_TRUSTED_PROXIES", "127.0.0.1/32"),
        ])
        .collect();
    let s = TestServer::start_with("info", &env).await;
    s.create_group("rg").await;
    let receiver = Receiver::start(Behaviour::default()).await;
    let (status, _) = subscribe(
        &s,
        &s.sub_path(),
        "retired",
        &receiver.url,
        json!({"filter": {"includedEventTypes": ["Rekey.RetiredKeyPresented"]}}),
    )
    .await;
    assert_eq!(status, 201);
    let created = s.create_account("rg", "acct").await;
    let endpoint = created["properties"]["endpoint"].as_str().unwrap();
    let path = endpoint[endpoint.find("/data/").unwrap()..].to_string();
    let (_, before) = s.list_keys("rg", "acct").await;
    let old = before["key1"].as_str().unwrap().to_string();
    let (status, regenerated) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200, "{regenerated}");
    let mut keys = keys_in(&before);
    keys.extend(keys_in(&regenerated));

    present_retired(&s, &path, &old, "192.0.2.77", 5).await;
    let usage = usage_of(&s, "acct", "Key1").await;
    assert_eq!(usage["retired"]["presentations24h"], 5, "{usage}");
    let got = receiver.until_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let e = &got[0].json()[0];
    assert_eq!(e["eventType"], "Rekey.RetiredKeyPresented");
    assert_eq!(e["subject"], s.account_path("rg", "acct").as_str());
    let data = &e["data"];
    assert_eq!(data["resourceUri"], s.account_path("rg", "acct").as_str());
    assert_eq!(data["keyName"], "key1");
    assert_eq!(data["presentations"], 5, "{data}");
    assert_eq!(data["lastClientAddress"], "192.0.2.77");
    assert_eq!(data["regeneratedAt"], usage["retired"]["regeneratedAt"]);
    assert!(data["regeneratedAt"].is_string(), "{data}");
    assert_eq!(
        data["subscriptionId"],
        s.sub_path()["/subscriptions/".len()..]
    );
    assert_no_key_in(&got, &keys);

    // More presentations within the hour: no second event.
    present_retired(&s, &path, &old, "192.0.2.78", 3).await;
    usage_of(&s, "acct", "Key1").await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(receiver.accepted().len(), 1, "at most one an hour");

    // An hour after the last event (its time moved back), the next presentation sends another,
    // counting the hour's presentations.
    s.sql_execute("UPDATE retired_key_notices SET at = at - 3600000001")
        .await;
    present_retired(&s, &path, &old, "192.0.2.79", 1).await;
    usage_of(&s, "acct", "Key1").await;
    let got = receiver.until_accepted(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    let data = &got[1].json()[0]["data"];
    assert_eq!(data["presentations"], 9, "{data}");
    assert_eq!(data["lastClientAddress"], "192.0.2.79");
    assert_no_key_in(&got, &keys);
}

async fn a_max_key_age_outside_1_to_3650_is_refused() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    for bad in ["0", "3651", "\"7\"", "1.5"] {
        let (status, body) = s
            .call(
                Method::PUT,
                &format!("{}?api-version={CS_VERSION}", s.account_path("rg", "acct")),
                Some(&format!(r#"{{"location":"westus","kind":"TextAnalytics","sku":{{"name":"S0"}},"properties":{{"x-rekey-maxKeyAgeDays":{bad}}}}}"#)),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-rekey-maxKeyAgeDays"));
    }
    let policy = format!(
        "{}/providers/Rekey/keyPolicy?api-version=2026-01-01",
        s.sub_path()
    );
    let (status, _) = s
        .call(
            Method::PUT,
            &policy,
            Some(r#"{"properties":{"maxKeyAgeDays":0}}"#),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = s
        .call(
            Method::PUT,
            &policy,
            Some(r#"{"properties":{"maxKeyAgeDays":90}}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = s.call(Method::GET, &policy, None).await;
    assert_eq!(body["properties"]["maxKeyAgeDays"], 90);
}

async fn only_owner_and_contributor_may_create_event_subscriptions() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let scope = format!("{}/resourceGroups/rg", s.sub_path());
    let receiver = Receiver::start(Behaviour::default()).await;
    let body = json!({"properties": {"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": receiver.url}}}});
    for (role, allowed) in [
        ("Reader", false),
        ("Key Operator", false),
        ("Contributor", true),
    ] {
        let (_, token) = crate::access::token_with_role(&s, role, &scope).await;
        let name = format!("by-{}", role.replace(' ', "-").to_lowercase());
        let (status, answer) = crate::access::call_as(
            &s,
            &token,
            Method::PUT,
            &subscription_path(&scope, &name, EG_VERSION),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, if allowed { 201 } else { 403 }, "{role}: {answer}");
    }
    assert_eq!(
        receiver.state.lock().unwrap().handshakes,
        1,
        "a refused caller causes no handshake"
    );
    let (_, listed) = s
        .call(
            Method::GET,
            &format!(
                "{scope}/providers/Microsoft.EventGrid/eventSubscriptions?api-version={EG_VERSION}"
            ),
            None,
        )
        .await;
    let names: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["by-contributor"]);
}

/// A first node on a fresh PostgreSQL database, with `env`.
async fn first_node(env: &[(&str, &str)]) -> TestServer {
    let admin = postgres_admin_url().expect("checked by postgres_wanted");
    let database = TestDatabase::create(&admin).await;
    let url = database.url.clone();
    TestServer::start_on("info", env, Some(url), Some(database)).await
}

#[tokio::test]
async fn three_postgres_nodes_deliver_each_event_once() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(FAST).await;
    let b = a.join(FAST).await;
    let c = a.join(FAST).await;
    a.create_group("rg").await;
    a.create_account("rg", "acct").await;
    let receiver = Receiver::start(Behaviour::default()).await;
    let (status, _) = subscribe(&a, &a.sub_path(), "cluster", &receiver.url, json!({})).await;
    assert_eq!(status, 201);
    let nodes = [&a, &b, &c];
    let rounds = 30;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..rounds {
        let node = nodes[i % 3];
        let url = node.url(&format!(
            "{}/regenerateKey?api-version={CS_VERSION}",
            node.account_path("rg", "acct")
        ));
        let (client, token) = (node.client.clone(), a.token.clone());
        tasks.spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .body(r#"{"keyName":"Key1"}"#)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        });
    }
    for status in tasks.join_all().await {
        assert_eq!(status, 200);
    }
    let got = receiver
        .until_accepted(rounds, Duration::from_secs(30))
        .await;
    // Let any duplicate arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = if receiver.accepted().len() > got.len() {
        receiver.accepted()
    } else {
        got
    };
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.json()[0]["id"].as_str().unwrap().to_string())
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    let duplicates = total - ids.len();
    eprintln!("three nodes: {rounds} regenerations, {total} deliveries, {} distinct events, {duplicates} duplicates", ids.len());
    assert_eq!(ids.len(), rounds, "every regeneration's event arrived");
    assert_eq!(
        duplicates, 0,
        "no node delivered an event another node delivered"
    );
}

async fn disabling_enabling_and_ending_an_overlap_send_their_own_action_events() {
    let s = TestServer::start_with("info", FAST).await;
    s.create_group("rg").await;
    s.create_account("rg", "acct").await;
    let resource = s.account_path("rg", "acct");
    let receiver = Receiver::start(Behaviour::default()).await;
    let (status, created) = subscribe(&s, &resource, "controls", &receiver.url, json!({})).await;
    assert_eq!(status, 201, "{created}");
    for action in ["disableKey", "enableKey", "endKeyGrace"] {
        let (status, answer) = s
            .call(
                Method::POST,
                &format!(
                    "{resource}/{action}?api-version={}",
                    crate::helpers::CS_VERSION
                ),
                Some(r#"{"keyName":"Key2"}"#),
            )
            .await;
        assert!((200..300).contains(&status), "{action}: {status} {answer}");
    }
    let got = receiver.until_accepted(3, Duration::from_secs(10)).await;
    // Deliveries run side by side, as Event Grid's do: their order is not the changes' order.
    let mut names: Vec<String> = got
        .iter()
        .map(|e| {
            let body = e.json();
            assert_eq!(
                body[0]["eventType"],
                "Microsoft.Resources.ResourceActionSuccess"
            );
            body[0]["data"]["operationName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Microsoft.CognitiveServices/accounts/disableKey/action",
            "Microsoft.CognitiveServices/accounts/enableKey/action",
            "Microsoft.CognitiveServices/accounts/endKeyGrace/action",
        ]
    );
}
