//! rekey's rotation extensions through the CLI against a live rekeyd: `keys usage` (a table of each
//! key's data-plane use), `keys disable|enable`, regenerate's `--if-unused-for` and `--grace`, and a
//! regeneration resent under one `Idempotency-Key` when its answer is lost (through [`Proxy`], which
//! stands between the CLI and rekeyd and loses answers on purpose).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::helpers::{Cli, Rekeyd, CS_VERSION, QUANTUM};

const KEY_HEADER: &str = "Ocp-Apim-Subscription-Key";

/// One data-plane call to `endpoint` with `key` in `header`: the status.
fn present(endpoint: &str, header: &str, key: &str) -> u16 {
    reqwest::blocking::Client::new()
        .get(endpoint)
        .header(header, key)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn account_endpoint(server: &Rekeyd) -> String {
    let path = format!(
        "{}?api-version={CS_VERSION}",
        server.account_path("rg", "acct")
    );
    let (status, body) = server.call("GET", &path, None);
    assert_eq!(status, 200, "{body}");
    body["properties"]["endpoint"].as_str().unwrap().to_string()
}

/// `listKeys` with rekeyd's extension fields (`x-rekey-disabled`, `x-rekey-retiring`).
fn list_keys_with_extensions(server: &Rekeyd, ty: (&str, &str), name: &str) -> Value {
    let path = format!(
        "{}/listKeys?api-version={}",
        server.resource_path(ty.0, "rg", name),
        ty.1
    );
    let (status, body) = server.call("POST", &path, None);
    assert_eq!(status, 200, "{body}");
    body
}

fn account_keys(cli: &Cli, more: &[&str]) -> crate::helpers::Run {
    let mut args = vec!["cognitiveservices", "account", "keys"];
    args.extend_from_slice(more);
    args.extend_from_slice(&["-n", "acct", "-g", "rg"]);
    cli.run(&args)
}

/// The table's rows as whitespace-separated cells (no cell holds a space), header first.
fn table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.starts_with("---"))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Succeeded `regenerateKey` records in the activity log.
fn regenerations(cli: &Cli, action: &str) -> usize {
    let log = cli
        .run(&["monitor", "activity-log", "list", "--offset", "1h"])
        .json();
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operationName"]["value"] == action && e["status"]["value"] == "Succeeded")
        .count()
}

#[test]
fn keys_usage_prints_a_table_of_each_keys_requests_client_and_retired_presentations() {
    let (server, cli) = Rekeyd::with_account();
    let endpoint = account_endpoint(&server);
    let keys = server.account_keys("rg", "acct").unwrap();
    let key1 = keys["key1"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(present(&endpoint, KEY_HEADER, key1), 200);
    }
    assert_eq!(
        present(&endpoint, KEY_HEADER, keys["key2"].as_str().unwrap()),
        200
    );

    let run = account_keys(&cli, &["usage"]);
    let rows = table(run.ok());
    assert_eq!(
        rows[0],
        [
            "KeyName",
            "LastUsed",
            "LastClient",
            "Requests24h",
            "RetiredPresented24h",
            "RetiredLastPresented",
            "RetiredLastClient"
        ],
        "a table by default, columns in this order: {run:?}"
    );
    assert_eq!(rows[1][0], "Key1");
    assert!(rows[1][1].starts_with("20"), "a last-use time: {run:?}");
    assert_eq!(rows[1][2..], ["127.0.0.1", "3", "0", "never", "-"]);
    assert_eq!(rows[2][0], "Key2");
    assert_eq!(rows[2][2..4], ["127.0.0.1", "1"]);

    // -o json is rekeyd's answer whole, minute by minute.
    let json = account_keys(&cli, &["usage", "-o", "json"]).json();
    let minutes: u64 = json[0]["perMinute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["count"].as_u64().unwrap())
        .sum();
    assert_eq!(minutes, 3);
    assert_eq!(json[0]["keyName"], "Key1");

    // The replaced key1, still presented twice, shows in the retired columns.
    account_keys(&cli, &["regenerate", "--key-name", "key1", "--yes"]).json();
    assert_eq!(present(&endpoint, KEY_HEADER, key1), 401);
    assert_eq!(present(&endpoint, KEY_HEADER, key1), 401);
    let rows = table(account_keys(&cli, &["usage", "-o", "table"]).ok());
    assert_eq!(rows[1][0], "Key1");
    assert_eq!(rows[1][4], "2", "retired presentations: {rows:?}");
    assert!(rows[1][5].starts_with("20"), "{rows:?}");
    assert_eq!(rows[1][6], "127.0.0.1");
}

#[test]
fn a_disabled_key_is_refused_on_the_data_plane_until_it_is_enabled() {
    let (server, cli) = Rekeyd::with_account();
    let endpoint = account_endpoint(&server);
    let keys = server.account_keys("rg", "acct").unwrap();
    let key2 = keys["key2"].as_str().unwrap();
    assert_eq!(present(&endpoint, KEY_HEADER, key2), 200);

    let run = account_keys(&cli, &["disable", "--key-name", "key2", "--yes"]);
    assert_eq!(run.ok(), "", "disable prints nothing, as az's actions do");
    assert_eq!(present(&endpoint, KEY_HEADER, key2), 401);
    assert_eq!(
        present(&endpoint, KEY_HEADER, keys["key1"].as_str().unwrap()),
        200,
        "key1 is untouched"
    );
    let listed = list_keys_with_extensions(
        &server,
        ("Microsoft.CognitiveServices/accounts", CS_VERSION),
        "acct",
    );
    assert_eq!(listed["x-rekey-disabled"]["key2"], true);
    assert_eq!(listed["key2"], key2, "disabling does not rotate");

    account_keys(&cli, &["enable", "--key-name", "key2"]).ok();
    assert_eq!(present(&endpoint, KEY_HEADER, key2), 200);
    // The CLI prints az's shape of listKeys, without rekey's fields.
    let printed = account_keys(&cli, &["list"]).json();
    assert_eq!(printed, keys);
}

#[test]
fn what_if_on_disable_changes_nothing() {
    let (server, cli) = Rekeyd::with_account();
    let run = account_keys(&cli, &["disable", "--key-name", "key1", "--what-if"]);
    assert!(run
        .ok()
        .starts_with("What if: Performing the operation \"Disable key1\""));
    let listed = list_keys_with_extensions(
        &server,
        ("Microsoft.CognitiveServices/accounts", CS_VERSION),
        "acct",
    );
    assert!(listed.get("x-rekey-disabled").is_none(), "{listed}");
}

#[test]
fn regenerate_if_unused_for_refuses_a_key_in_use_and_tells_the_user_why() {
    let (server, cli) = Rekeyd::with_account();
    let endpoint = account_endpoint(&server);
    let before = server.account_keys("rg", "acct").unwrap();
    assert_eq!(
        present(&endpoint, KEY_HEADER, before["key1"].as_str().unwrap()),
        200
    );

    let refused = account_keys(
        &cli,
        &[
            "regenerate",
            "--key-name",
            "key1",
            "--if-unused-for",
            "15m",
            "--yes",
        ],
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("(KeyInUse)") && refused.stderr.contains("127.0.0.1"),
        "the refusal says the key is in use, and by whom: {refused:?}"
    );
    assert!(
        refused
            .stderr
            .contains("Leave out --if-unused-for to regenerate it anyway."),
        "{refused:?}"
    );
    assert_eq!(refused.stdout, "");
    assert_eq!(server.account_keys("rg", "acct").unwrap(), before);

    // key2 has not been used: the same guard lets it rotate.
    let done = account_keys(
        &cli,
        &[
            "regenerate",
            "--key-name",
            "key2",
            "--if-unused-for",
            "15m",
            "--yes",
        ],
    )
    .json();
    assert_ne!(done["key2"], before["key2"]);
    assert_eq!(done["key1"], before["key1"]);
}

#[test]
fn a_duration_that_is_not_one_is_refused_naming_the_option_and_nothing_is_sent() {
    let (server, cli) = Rekeyd::with_account();
    let before = server.account_keys("rg", "acct").unwrap();
    for (option, bad) in [
        ("--if-unused-for", "15x"),
        ("--if-unused-for", "15"),
        ("--if-unused-for", "2d"),
        ("--grace", "soon"),
        ("--grace", "8d"),
    ] {
        let run = account_keys(
            &cli,
            &["regenerate", "--key-name", "key1", option, bad, "--yes"],
        );
        assert_eq!(run.code, 2, "{option} {bad}: {run:?}");
        assert!(
            run.stderr.contains(option) && run.stderr.contains(bad),
            "{option} {bad}: {run:?}"
        );
    }
    assert_eq!(server.account_keys("rg", "acct").unwrap(), before);
}

#[test]
fn regenerate_with_grace_keeps_the_old_key_working_beside_the_new_one() {
    let (server, cli) = Rekeyd::with_account();
    let endpoint = account_endpoint(&server);
    let before = server.account_keys("rg", "acct").unwrap();
    let after = account_keys(
        &cli,
        &["regenerate", "--key-name", "key2", "--grace", "1h", "--yes"],
    )
    .json();
    assert_ne!(after["key2"], before["key2"]);
    for key in [&before["key2"], &after["key2"]] {
        assert_eq!(present(&endpoint, KEY_HEADER, key.as_str().unwrap()), 200);
    }
    let listed = list_keys_with_extensions(
        &server,
        ("Microsoft.CognitiveServices/accounts", CS_VERSION),
        "acct",
    );
    assert!(
        listed["x-rekey-retiring"]["key2"]["until"].is_string(),
        "{listed}"
    );
}

#[test]
fn quantum_and_cosmos_name_their_keys_for_usage_disable_and_enable_as_their_regenerate_does() {
    let server = Rekeyd::start();
    server.create_group("rg");
    let cli = Cli::logged_in(&server);
    cli.run(&[
        "quantum",
        "workspace",
        "create",
        "-w",
        "ws",
        "-g",
        "rg",
        "-l",
        "westus",
        "-a",
        "st",
    ])
    .json();
    cli.run(&["cosmosdb", "create", "-n", "docdb", "-g", "rg"])
        .json();

    let ws = server.action(QUANTUM, "rg", "ws", "listKeys");
    let (status, workspace) = server.call(
        "GET",
        &format!(
            "{}?api-version={}",
            server.resource_path(QUANTUM.0, "rg", "ws"),
            QUANTUM.1
        ),
        None,
    );
    assert_eq!(status, 200);
    let endpoint = workspace["properties"]["endpointUri"].as_str().unwrap();
    let primary = ws["primaryKey"]["key"].as_str().unwrap();
    assert_eq!(present(endpoint, "x-ms-quantum-api-key", primary), 200);
    let quantum = |more: &[&str]| {
        let mut args = vec!["quantum", "workspace", "keys"];
        args.extend_from_slice(more);
        args.extend_from_slice(&["-w", "ws", "-g", "rg"]);
        cli.run(&args)
    };
    let rows = table(quantum(&["usage"]).ok());
    assert_eq!(rows[1][0], "Primary");
    assert_eq!(rows[1][3], "1");
    assert_eq!(rows[2][0], "Secondary");
    quantum(&["disable", "--key-type", "Primary", "--yes"]).ok();
    assert_eq!(present(endpoint, "x-ms-quantum-api-key", primary), 401);
    quantum(&["enable", "--key-type", "primary"]).ok();
    assert_eq!(present(endpoint, "x-ms-quantum-api-key", primary), 200);

    let cosmos_type = crate::helpers::COSMOS;
    let cosmos = |more: &[&str]| {
        let mut args = vec!["cosmosdb", "keys"];
        args.extend_from_slice(more);
        args.extend_from_slice(&["-n", "docdb", "-g", "rg"]);
        cli.run(&args)
    };
    let names: Vec<String> = table(cosmos(&["usage"]).ok())
        .into_iter()
        .skip(1)
        .map(|row| row[0].clone())
        .collect();
    assert_eq!(
        names,
        [
            "primary",
            "secondary",
            "primaryReadonly",
            "secondaryReadonly"
        ]
    );
    cosmos(&["disable", "--key-kind", "secondaryReadonly", "--yes"]).ok();
    let listed = list_keys_with_extensions(&server, cosmos_type, "docdb");
    assert_eq!(
        listed["x-rekey-disabled"],
        serde_json::json!({"secondaryReadonly": true})
    );
    cosmos(&["enable", "--key-kind", "secondaryReadonly"]).ok();
    let listed = list_keys_with_extensions(&server, cosmos_type, "docdb");
    assert!(listed.get("x-rekey-disabled").is_none(), "{listed}");
}

/// What [`Proxy`] does to `regenerateKey` requests; everything else it forwards.
#[derive(Clone, Copy)]
enum Trouble {
    /// Forwards the first, lets rekeyd act, then closes the connection without the answer.
    LoseFirstAnswer,
    /// Forwards every one and loses every answer.
    LoseEveryAnswer,
    /// Answers the first itself with 503, without forwarding it.
    UnavailableFirst,
}

/// A `regenerateKey` request as the proxy saw it.
#[derive(Debug, Clone)]
struct Seen {
    idempotency_key: Option<String>,
    forwarded: bool,
    replayed: bool,
}

/// An HTTP proxy on 127.0.0.1 in front of rekeyd, one request per connection (it asks rekeyd to
/// close, and says so to the client), that troubles `regenerateKey` as [`Trouble`] says.
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    fn start(upstream: &str, trouble: Trouble) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, record) = (upstream.clone(), record.clone());
                std::thread::spawn(move || relay(client, &upstream, trouble, &record));
            }
        });
        Proxy { url, seen }
    }

    fn regenerations(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request (head and Content-Length body) from `stream`.
fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some((head, data[head_end..head_end + length].to_vec()))
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn relay(mut client: TcpStream, upstream: &str, trouble: Trouble, record: &Mutex<Vec<Seen>>) {
    let Some((head, body)) = read_request(&mut client) else {
        return;
    };
    let regenerate = head
        .lines()
        .next()
        .is_some_and(|l| l.contains("/regenerateKey"));
    let first = regenerate && record.lock().unwrap().is_empty();
    if regenerate && first && matches!(trouble, Trouble::UnavailableFirst) {
        record.lock().unwrap().push(Seen {
            idempotency_key: header_value(&head, "idempotency-key"),
            forwarded: false,
            replayed: false,
        });
        let _ = client.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    // One request per connection: rekeyd closes after answering, so its answer ends at EOF.
    let mut forwarded: String = head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream).unwrap();
    server.write_all(forwarded.as_bytes()).unwrap();
    server.write_all(&body).unwrap();
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).unwrap();
    if regenerate {
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        record.lock().unwrap().push(Seen {
            idempotency_key: header_value(&head, "idempotency-key"),
            forwarded: true,
            replayed: text.contains("\r\nx-rekey-replayed: true\r\n"),
        });
        let lose = match trouble {
            Trouble::LoseFirstAnswer => first,
            Trouble::LoseEveryAnswer => true,
            Trouble::UnavailableFirst => false,
        };
        if lose {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    }
    let _ = client.write_all(&answer);
    let _ = client.shutdown(Shutdown::Write);
}

/// A CLI that talks to rekeyd through `proxy`.
fn through(proxy: &Proxy, server: &Rekeyd) -> Cli {
    Cli::new()
        .with_env("REKEY_ENDPOINT", &proxy.url)
        .with_env("REKEY_TOKEN", &server.token)
}

const REGENERATE_ACTION: &str = "Microsoft.CognitiveServices/accounts/regenerateKey/action";

#[test]
fn a_regeneration_whose_answer_is_lost_is_resent_with_the_same_idempotency_key_and_rotates_once() {
    let (server, direct) = Rekeyd::with_account();
    let proxy = Proxy::start(&server.base, Trouble::LoseFirstAnswer);
    let cli = through(&proxy, &server);
    let before = server.account_keys("rg", "acct").unwrap();

    let run = account_keys(&cli, &["regenerate", "--key-name", "key1", "--yes"]);
    let printed = run.json();
    assert!(
        run.stderr.contains("no answer from rekeyd") && run.stderr.contains("same Idempotency-Key"),
        "the user is told about the resend: {run:?}"
    );
    assert!(
        run.stderr.contains("nothing was regenerated twice"),
        "and that the answer was a replay: {run:?}"
    );
    let now = server.account_keys("rg", "acct").unwrap();
    assert_ne!(now["key1"], before["key1"]);
    assert_eq!(printed, now, "the key printed is the key in force");
    assert_eq!(now["key2"], before["key2"]);

    let seen = proxy.regenerations();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let token = seen[0].idempotency_key.clone().expect("an Idempotency-Key");
    assert_eq!(token.len(), 36, "a UUID: {token}");
    assert_eq!(seen[1].idempotency_key.as_deref(), Some(token.as_str()));
    assert!(!seen[0].replayed && seen[1].replayed, "{seen:?}");
    assert_eq!(regenerations(&direct, REGENERATE_ACTION), 1);

    // Each command is a new request: a second regeneration rotates again, under a new key.
    account_keys(&direct, &["regenerate", "--key-name", "key1", "--yes"]).json();
    assert_ne!(
        server.account_keys("rg", "acct").unwrap()["key1"],
        now["key1"]
    );
}

#[test]
fn a_regeneration_that_never_gets_an_answer_gives_up_after_three_resends_and_rotates_once() {
    let (server, direct) = Rekeyd::with_account();
    let proxy = Proxy::start(&server.base, Trouble::LoseEveryAnswer);
    let cli = through(&proxy, &server);
    let before = server.account_keys("rg", "acct").unwrap();

    let run = account_keys(&cli, &["regenerate", "--key-name", "key2", "--yes"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("Cannot reach rekey"), "{run:?}");
    let seen = proxy.regenerations();
    assert_eq!(seen.len(), 4, "the first try and three resends: {seen:?}");
    assert!(seen
        .iter()
        .all(|s| s.idempotency_key == seen[0].idempotency_key));
    assert!(seen[1..].iter().all(|s| s.replayed), "{seen:?}");
    assert_ne!(
        server.account_keys("rg", "acct").unwrap()["key2"],
        before["key2"]
    );
    assert_eq!(regenerations(&direct, REGENERATE_ACTION), 1);
}

#[test]
fn a_regeneration_answered_503_is_resent_and_rotates_once() {
    let (server, direct) = Rekeyd::with_account();
    let proxy = Proxy::start(&server.base, Trouble::UnavailableFirst);
    let cli = through(&proxy, &server);
    let before = server.account_keys("rg", "acct").unwrap();

    let run = account_keys(&cli, &["regenerate", "--key-name", "key1", "--yes"]);
    let printed = run.json();
    assert!(run.stderr.contains("503"), "{run:?}");
    let seen = proxy.regenerations();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(!seen[0].forwarded && seen[1].forwarded && !seen[1].replayed);
    assert!(seen[0].idempotency_key.is_some());
    assert_eq!(seen[0].idempotency_key, seen[1].idempotency_key);
    let now = server.account_keys("rg", "acct").unwrap();
    assert_ne!(now["key1"], before["key1"]);
    assert_eq!(printed, now);
    assert_eq!(regenerations(&direct, REGENERATE_ACTION), 1);
}
