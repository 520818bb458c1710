//! Several nodes on one PostgreSQL: a shared bootstrap, serializable regenerations across nodes,
//! revocation everywhere through change notices and the sequence check, regenerations that wait for
//! every leased node (so checks ask the database nothing), failing closed when a node is cut off, and
//! riding out a PostgreSQL outage. These need PostgreSQL (`REKEY_TEST_POSTGRES_URL`, and
//! for the outage test the server binaries from Debian's `postgresql` package); without it each
//! fails, unless `REKEY_TEST_BACKENDS=sqlite` leaves PostgreSQL out on purpose.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;
use crate::keys::fifty_regenerations_over;

/// A first node on a fresh PostgreSQL database (with `env`), as the PostgreSQL run of any test gets.
async fn first_node(env: &[(&str, &str)]) -> TestServer {
    let admin = postgres_admin_url().expect("checked by postgres_wanted");
    let database = TestDatabase::create(&admin).await;
    let url = database.url.clone();
    TestServer::start_on("info", env, Some(url), Some(database)).await
}

/// Creates an account through `s`; returns its data-plane endpoint, internal id and keys.
async fn account(s: &TestServer, group: &str, name: &str) -> (String, String, Value) {
    s.create_group(group).await;
    let created = s.create_account(group, name).await;
    let (_, keys) = s.list_keys(group, name).await;
    (
        created["properties"]["endpoint"]
            .as_str()
            .unwrap()
            .to_string(),
        created["properties"]["internalId"]
            .as_str()
            .unwrap()
            .to_string(),
        keys,
    )
}

/// `endpoint` on `node` (a resource's endpoint names the node that created it).
fn on(node: &TestServer, endpoint: &str) -> String {
    let path = &endpoint[endpoint.find("/data/").expect("a data-plane endpoint")..];
    node.url(path)
}

async fn data_call(node: &TestServer, endpoint: &str, key: &str) -> reqwest::Response {
    node.client
        .get(on(node, endpoint))
        .header("Ocp-Apim-Subscription-Key", key)
        .send()
        .await
        .unwrap()
}

async fn data_status(node: &TestServer, endpoint: &str, key: &str) -> u16 {
    data_call(node, endpoint, key).await.status().as_u16()
}

/// Polls until `node` answers `want` for `key`, for at most `patience`; returns the last status.
async fn until_status(
    node: &TestServer,
    endpoint: &str,
    key: &str,
    want: u16,
    patience: Duration,
) -> u16 {
    let deadline = Instant::now() + patience;
    loop {
        let status = data_status(node, endpoint, key).await;
        if status == want || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_joining_node_finds_the_bootstrap_and_accepts_the_same_token() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(&[]).await;
    let b = a.join(&[]).await;
    let (status, subs) = b
        .call(Method::GET, "/subscriptions?api-version=2022-12-01", None)
        .await;
    assert_eq!(status, 200, "{subs}");
    assert_eq!(subs["value"][0]["subscriptionId"], a.subscription.as_str());
    // A group made on one node is there on the other: one store.
    a.create_group("rg").await;
    let (status, _) = b
        .call(
            Method::GET,
            &format!(
                "{}/resourcegroups/rg?api-version={RG_VERSION}",
                b.sub_path()
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn nodes_starting_at_once_make_one_bootstrap_and_share_its_token() {
    if !postgres_wanted() {
        return;
    }
    let master_key = "42".repeat(32);
    let mut nodes = start_nodes_at_once(3, &master_key).await;
    let written: Vec<_> = nodes
        .iter()
        .filter(|n| n.data_dir().join("bootstrap.json").exists())
        .collect();
    assert_eq!(written.len(), 1, "exactly one node made the bootstrap");
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(written[0].data_dir().join("bootstrap.json")).unwrap(),
    )
    .unwrap();
    for node in &mut nodes {
        node.token = boot["token"].as_str().unwrap().to_string();
        node.subscription = boot["subscriptionId"].as_str().unwrap().to_string();
    }
    for node in &nodes {
        let (status, body) = node
            .call(Method::GET, "/subscriptions?api-version=2022-12-01", None)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["value"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn fifty_concurrent_regenerations_over_three_nodes_all_commit_and_the_last_one_wins() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(&[]).await;
    let b = a.join(&[]).await;
    let c = a.join(&[]).await;
    fifty_regenerations_over(&[&a, &b, &c]).await;
    let (_, check) = c.call(Method::GET, "/rekey/audit/verify", None).await;
    assert_eq!(
        check["intact"], true,
        "the audit chain stays one line: {check}"
    );
}

#[tokio::test]
async fn a_key_regenerated_on_one_node_is_refused_on_the_others() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(&[]).await;
    let b = a.join(&[]).await;
    let c = a.join(&[]).await;
    let (endpoint, _, keys) = account(&a, "rg", "acct").await;
    let old = keys["key1"].as_str().unwrap();
    for node in [&b, &c] {
        // The new account reaches the other nodes by notice.
        assert_eq!(
            until_status(node, &endpoint, old, 200, Duration::from_secs(5)).await,
            200
        );
    }
    let (status, regenerated) = a.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200, "{regenerated}");
    let new = regenerated["key1"].as_str().unwrap();
    for node in [&b, &c] {
        assert_eq!(
            until_status(node, &endpoint, old, 401, Duration::from_secs(5)).await,
            401
        );
        assert_eq!(
            until_status(node, &endpoint, new, 200, Duration::from_secs(5)).await,
            200
        );
    }
    assert_eq!(data_status(&a, &endpoint, old).await, 401, "at once on A");
}

/// What `/verify` on `node` says of `key`: valid or not.
async fn verified(node: &TestServer, key: &str) -> bool {
    let body = serde_json::json!({ "key": key }).to_string();
    let (status, answer) = node.call(Method::POST, "/verify", Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    answer["valid"] == true
}

/// The linearizability the multi-node histories of `tests/reliability/linearizability.py --nodes`
/// check, in its plainest form: no waiting anywhere, each check right after the answer.
#[tokio::test]
async fn a_regeneration_is_in_force_on_every_node_as_soon_as_it_answers() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(&[]).await;
    let b = a.join(&[]).await;
    let c = a.join(&[]).await;
    let nodes = [&a, &b, &c];
    let (endpoint, _, keys) = account(&a, "rg", "acct").await;
    let mut old = keys["key1"].as_str().unwrap().to_string();
    for node in [&b, &c] {
        assert_eq!(
            data_status(node, &endpoint, &old).await,
            200,
            "an account is served on every node once its creation answered"
        );
    }
    for round in 0..30 {
        let writer = round % nodes.len();
        let (status, regenerated) = nodes[writer].regenerate("rg", "acct", "Key1").await;
        assert_eq!(status, 200, "{regenerated}");
        let new = regenerated["key1"].as_str().unwrap().to_string();
        // The other nodes first: the writer's own index caught up before it answered.
        for k in 1..=nodes.len() {
            let reader = (writer + k) % nodes.len();
            let node = nodes[reader];
            assert_eq!(
                data_status(node, &endpoint, &old).await,
                401,
                "round {round}: node {reader} accepted the key node {writer} had regenerated"
            );
            assert!(
                !verified(node, &old).await,
                "round {round}: node {reader} verified the key node {writer} had regenerated"
            );
            assert_eq!(
                data_status(node, &endpoint, &new).await,
                200,
                "round {round}: node {reader} refused the key node {writer} had just made"
            );
        }
        old = new;
    }
}

#[tokio::test]
async fn a_change_whose_notice_never_came_is_caught_by_the_sequence_check() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(&[]).await;
    let b = a.join(&[]).await;
    let (endpoint, internal_id, keys) = account(&a, "rg", "acct").await;
    let key = keys["key1"].as_str().unwrap();
    assert_eq!(
        until_status(&b, &endpoint, key, 200, Duration::from_secs(5)).await,
        200
    );
    // A change written straight into the feed sends no NOTIFY: only the sequence check finds it.
    let id = uuid::Uuid::parse_str(&internal_id).unwrap();
    a.sql_execute(&format!(
        "UPDATE resources SET settings = '{{\"disableLocalAuth\":true}}' WHERE internal_id = '{id}'"
    ))
    .await;
    a.sql_execute(&format!(
        "INSERT INTO changes (resource_id, slot, change, at) VALUES ('{id}', NULL, 'updated', 0)"
    ))
    .await;
    for node in [&a, &b] {
        assert_eq!(
            until_status(node, &endpoint, key, 403, Duration::from_secs(5)).await,
            403,
            "local auth is off on every node"
        );
    }
}

/// A TCP forwarder between one node and PostgreSQL that can cut every connection and refuse new
/// ones, to cut a single node off while the others keep their database; it counts the bytes it
/// carries, to tell how much a node asks its database.
struct Cable {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    gone: Arc<AtomicBool>,
    carried: Arc<AtomicU64>,
}

/// Copies `from` to `to`, adding what passes to `carried` as it goes.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    carried: &AtomicU64,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        carried.fetch_add(n as u64, Ordering::SeqCst);
        to.write_all(&buf[..n]).await?;
    }
}

impl Cable {
    /// Runs on a thread and runtime of its own: the test's runtime blocks while a node starts.
    fn to(target: String) -> Cable {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let gone = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let carried = Arc::new(AtomicU64::new(0));
        let (is_open, is_gone, held, count) = (
            open.clone(),
            gone.clone(),
            connections.clone(),
            carried.clone(),
        );
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                while !is_gone.load(Ordering::SeqCst) {
                    let accepted =
                        tokio::time::timeout(Duration::from_millis(20), listener.accept()).await;
                    let Ok(Ok((mut inbound, _))) = accepted else {
                        continue;
                    };
                    if !is_open.load(Ordering::SeqCst) {
                        continue; // dropped: as good as refused
                    }
                    let (target, count) = (target.clone(), count.clone());
                    held.lock().unwrap().push(tokio::spawn(async move {
                        if let Ok(outbound) = TcpStream::connect(&target).await {
                            let (in_read, in_write) = inbound.split();
                            let (out_read, out_write) = outbound.into_split();
                            let _ = tokio::try_join!(
                                pump(in_read, out_write, &count),
                                pump(out_read, in_write, &count)
                            );
                        }
                    }));
                }
            });
        });
        Cable {
            port,
            open,
            connections,
            gone,
            carried,
        }
    }

    /// Bytes carried so far, both ways.
    fn carried(&self) -> u64 {
        self.carried.load(Ordering::SeqCst)
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn mend(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        self.cut();
        self.gone.store(true, Ordering::SeqCst);
    }
}

/// host:port of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> String {
    let rest = &url[url.find("://").unwrap() + 3..];
    let rest = rest.split('/').next().unwrap();
    rest.rsplit('@').next().unwrap().to_string()
}

/// Another node on `a`'s database (with `env`), whose every database connection runs through a
/// [`Cable`] of its own.
async fn join_through_cable(a: &TestServer, env: &[(&str, &str)]) -> (TestServer, Cable) {
    let url = a.database_url().unwrap().to_string();
    let cable = Cable::to(host_port(&url));
    let through_cable = url.replacen(&host_port(&url), &format!("127.0.0.1:{}", cable.port), 1);
    let master_key_file = a.data_dir().join("master.key").display().to_string();
    let mut env = env.to_vec();
    env.push(("REKEY_MASTER_KEY_FILE", &master_key_file));
    let mut b = TestServer::start_on("info", &env, Some(through_cable), None).await;
    b.token = a.token.clone();
    b.subscription = a.subscription.clone();
    (b, cable)
}

#[tokio::test]
async fn a_node_cut_off_from_the_database_refuses_keys_instead_of_trusting_its_cache() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(&[]).await;
    let (b, cable) = join_through_cable(&a, &[("REKEY_MAX_STALENESS_MS", "300")]).await;
    let (endpoint, _, keys) = account(&a, "rg", "acct").await;
    let (old, other) = (
        keys["key1"].as_str().unwrap(),
        keys["key2"].as_str().unwrap(),
    );
    assert_eq!(
        until_status(&b, &endpoint, old, 200, Duration::from_secs(5)).await,
        200
    );

    cable.cut();
    let (status, _) = a.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200);
    // Past the bound, B can no longer vouch for any key: refused with 503, never accepted.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for key in [old, other] {
        let resp = data_call(&b, &endpoint, key).await;
        assert_eq!(
            resp.status(),
            503,
            "a cut-off node does not trust its cache"
        );
        assert_eq!(resp.headers()["retry-after"], "1");
    }
    let (status, body) = b.list_keys("rg", "acct").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "ServiceUnavailable");

    cable.mend();
    assert_eq!(
        until_status(&b, &endpoint, old, 401, Duration::from_secs(10)).await,
        401
    );
    assert_eq!(data_status(&b, &endpoint, other).await, 200);
}

/// How long a leased node may go on trusting its index after its last renewal, and how long the
/// others wait before expelling it (`dataplane/membership.rs`: `TRUSTED_FOR`, `EXPIRES_AFTER`).
const TRUSTED_FOR: Duration = Duration::from_millis(2_000);
const EXPIRES_AFTER: Duration = Duration::from_millis(2_500);
const RENEW_EVERY: Duration = Duration::from_millis(250);

/// Under the default bound a check trusts the node's lease and asks the database nothing: a
/// thousand checks on each of two nodes, right after a regeneration on a third, move about what
/// the nodes' lease renewals do in that time (a round trip per check, as a confirmation was, would
/// be over a hundred kilobytes per node).
#[tokio::test]
async fn leased_nodes_refuse_a_regenerated_key_without_asking_the_database_on_each_check() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(&[]).await;
    // Usage counts and retired-key notices are written once a flush interval, not per check: kept
    // out of the measured window so it weighs only what checks cost.
    let quiet = [("REKEY_USAGE_FLUSH_MS", "600000")];
    let (b, b_cable) = join_through_cable(&a, &quiet).await;
    let (c, c_cable) = join_through_cable(&a, &quiet).await;
    let (endpoint, _, keys) = account(&a, "rg", "acct").await;
    let old = keys["key1"].as_str().unwrap();
    let (status, regenerated) = a.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200, "{regenerated}");
    let new = regenerated["key1"].as_str().unwrap();
    for (node, cable) in [(&b, &b_cable), (&c, &c_cable)] {
        let before = cable.carried();
        let started = Instant::now();
        // Refusals are few: many from one address would be throttled.
        for _ in 0..10 {
            assert_eq!(data_status(node, &endpoint, old).await, 401);
        }
        for _ in 0..990 {
            assert_eq!(data_status(node, &endpoint, new).await, 200);
        }
        let carried = cable.carried() - before;
        let seconds = started.elapsed().as_secs_f64();
        // A renewal is a few hundred bytes each way, with the other nodes' renewal notices: at
        // most about 3 kB a second; allowed 8 kB a second and 4 kB more.
        let allowed = 4_000 + (8_000.0 * seconds) as u64;
        assert!(
            carried <= allowed,
            "1,000 checks in {seconds:.2} s moved {carried} bytes to and from the database (allowed {allowed})"
        );
    }
}

/// A node cut off from its database can neither renew its lease nor acknowledge a change. The
/// regeneration waits until the others may count that lease lapsed, and the node, whose own view of
/// the lease ends first, refuses every check by then; once its database is back it catches up,
/// joins again and serves the new key.
#[tokio::test]
async fn a_regeneration_waits_for_a_cut_off_node_until_its_lease_has_lapsed() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(&[]).await;
    let c = a.join(&[]).await;
    let (b, cable) = join_through_cable(&a, &[]).await;
    let (endpoint, _, keys) = account(&a, "rg", "acct").await;
    let old = keys["key1"].as_str().unwrap();
    assert_eq!(data_status(&b, &endpoint, old).await, 200);

    cable.cut();
    let cut = Instant::now();
    let (status, regenerated) = a.regenerate("rg", "acct", "Key1").await;
    let answered = cut.elapsed();
    assert_eq!(status, 200, "{regenerated}");
    let new = regenerated["key1"].as_str().unwrap();
    for key in [old, new] {
        let resp = data_call(&b, &endpoint, key).await;
        assert_eq!(
            resp.status(),
            503,
            "B cannot know what A did: it refuses every key"
        );
        assert_eq!(resp.headers()["retry-after"], "1");
    }
    // B's last renewal was about one renewal period before the cut (more if the database was slow
    // to answer it); A expels B only after seeing that renewal unchanged for EXPIRES_AFTER.
    assert!(
        answered >= TRUSTED_FOR / 2,
        "the regeneration answered {answered:?} after B was cut off: before B's lease lapsed"
    );
    assert!(
        answered < EXPIRES_AFTER * 3,
        "the regeneration waited {answered:?} for a node that was gone"
    );
    assert_eq!(data_status(&c, &endpoint, old).await, 401);
    assert_eq!(data_status(&c, &endpoint, new).await, 200);
    // B is expelled: the next regeneration does not wait for it.
    let started = Instant::now();
    let (status, again) = a.regenerate("rg", "acct", "Key2").await;
    assert_eq!(status, 200, "{again}");
    assert!(
        started.elapsed() < TRUSTED_FOR / 2,
        "a second regeneration waited {:?} for the expelled node",
        started.elapsed()
    );

    cable.mend();
    assert_eq!(
        until_status(&b, &endpoint, new, 200, Duration::from_secs(10)).await,
        200,
        "B serves again once it has caught up and joined"
    );
    assert_eq!(data_status(&b, &endpoint, old).await, 401);
}

/// A node that loses its database stops trusting its index within its lease (two seconds after its
/// last renewal, at most a renewal period more after the cut), answering 503 rather than vouching for
/// a key beyond that; and serves again by itself once the database is back.
#[tokio::test]
async fn a_node_that_lost_its_database_refuses_checks_within_its_lease_and_recovers() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(&[]).await;
    let (b, cable) = join_through_cable(&a, &[]).await;
    let (endpoint, _, keys) = account(&a, "rg", "acct").await;
    let key = keys["key1"].as_str().unwrap();
    assert_eq!(data_status(&b, &endpoint, key).await, 200);

    cable.cut();
    let cut = Instant::now();
    let refused_after = loop {
        let status = data_status(&b, &endpoint, key).await;
        if status == 503 {
            break cut.elapsed();
        }
        assert_eq!(status, 200, "until its lease ends B still knows this key");
        assert!(
            cut.elapsed() < TRUSTED_FOR + RENEW_EVERY + Duration::from_millis(500),
            "B still trusted its index {:?} after losing its database",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        refused_after <= TRUSTED_FOR + RENEW_EVERY + Duration::from_millis(100),
        "B refused only {refused_after:?} after the cut"
    );
    // Still refusing a while later: nothing renews the lease without the database.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(data_status(&b, &endpoint, key).await, 503);

    cable.mend();
    assert_eq!(
        until_status(&b, &endpoint, key, 200, Duration::from_secs(10)).await,
        200,
        "B serves again by itself once its database is back"
    );
}

/// A PostgreSQL cluster of this test's own (scripts/pg-cluster), so stopping it disturbs no other
/// test.
struct PrivateCluster {
    dir: tempfile::TempDir,
    url: String,
}

fn pg_cluster(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg-cluster");
    let out = std::process::Command::new(script)
        .args(args)
        .output()
        .expect("scripts/pg-cluster runs");
    assert!(
        out.status.success(),
        "pg-cluster {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl PrivateCluster {
    fn start() -> PrivateCluster {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg");
        let url = pg_cluster(&["start", path.to_str().unwrap()]);
        PrivateCluster { dir, url }
    }

    fn path(&self) -> String {
        self.dir.path().join("pg").display().to_string()
    }

    /// Like a crash: no shutdown checkpoint, connections cut.
    fn stop(&self) {
        pg_cluster(&["stop", &self.path(), "immediate"]);
    }

    fn start_again(&self) {
        pg_cluster(&["start-again", &self.path()]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/pg-cluster"
        ))
        .args(["stop", &self.path(), "immediate"])
        .output();
    }
}

#[tokio::test]
async fn a_postgres_outage_answers_503_and_loses_no_acknowledged_change() {
    if !postgres_wanted() {
        return;
    }
    let cluster = PrivateCluster::start();
    let s = TestServer::start_on("info", &[], Some(cluster.url.clone()), None).await;
    let (endpoint, _, _) = account(&s, "rg", "acct").await;
    let (status, acknowledged) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200);

    cluster.stop();
    let (status, body) = s.regenerate("rg", "acct", "Key2").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
    let resp = s
        .client
        .post(s.url(&format!(
            "{}/listKeys?api-version={CS_VERSION}",
            s.account_path("rg", "acct")
        )))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    // Once its lease has ended the data plane cannot vouch for keys either.
    let key1 = acknowledged["key1"].as_str().unwrap();
    assert_eq!(
        until_status(
            &s,
            &endpoint,
            key1,
            503,
            TRUSTED_FOR + Duration::from_secs(1)
        )
        .await,
        503
    );

    cluster.start_again();
    // rekeyd reconnects by itself; what it acknowledged is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let (status, listed) = s.list_keys("rg", "acct").await;
        if status == 200 {
            break listed;
        }
        assert!(Instant::now() < deadline, "rekeyd did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (&listed["key1"], &listed["key2"]),
        (&acknowledged["key1"], &acknowledged["key2"])
    );
    assert_eq!(
        until_status(&s, &endpoint, key1, 200, Duration::from_secs(10)).await,
        200
    );
    let (status, _) = s.regenerate("rg", "acct", "Key1").await;
    assert_eq!(status, 200, "writes work again");
    assert_eq!(data_status(&s, &endpoint, key1).await, 401);
}

#[tokio::test]
async fn a_joining_node_names_itself_in_its_ready_file_but_has_no_token_to_give() {
    if !postgres_wanted() {
        return;
    }
    let a = first_node(&[]).await;
    let outside = tempfile::tempdir().unwrap();
    let path = outside.path().join("ready.json");
    let b = a
        .join(&[("REKEY_READY_FILE", path.to_str().unwrap())])
        .await;
    let ready: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(ready["url"], b.base.as_str());
    assert_eq!(ready["subscriptionId"], a.subscription.as_str());
    // The store keeps only the token's digest, and this node wrote no bootstrap.json.
    assert!(ready.get("token").is_none(), "{ready}");
}
