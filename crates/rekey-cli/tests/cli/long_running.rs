//! Long-running operations and the contract's replies that today's rekeyd does not send yet (Cosmos
//! DB's 202 + `Azure-AsyncOperation`, Quantum's 204), against a scripted stand-in for ARM: polling
//! until `Succeeded`, a `Failed` operation, `--no-wait`, the spinner on a terminal only, and
//! `--pass-thru`. The live-server tests in `cosmosdb` and `quantum` cover the same commands end to end.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::helpers::Cli;

const SUB: &str = "00000000-0000-4000-8000-00000000000a";

/// A reply: status, extra headers, body.
type Reply = (u16, Vec<(String, String)>, String);

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: String,
}

/// An HTTP/1.1 server on 127.0.0.1 that answers each request with `script(request, base URL)`.
struct FakeArm {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeArm {
    fn start(script: impl Fn(&Seen, &str, usize) -> Reply + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, url) = (seen.clone(), base.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap();
                        }
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let mut parts = request_line.split_whitespace();
                let request = Seen {
                    method: parts.next().unwrap_or("").to_string(),
                    path: parts.next().unwrap_or("").to_string(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                // How many times this path was asked before, so a script can change its answer.
                let earlier = {
                    let mut log = log.lock().unwrap();
                    let n = log
                        .iter()
                        .filter(|s: &&Seen| s.path == request.path)
                        .count();
                    log.push(request.clone());
                    n
                };
                let (status, headers, body) = script(&request, &url, earlier);
                let mut reply = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    reply.push_str(&format!("{name}: {value}\r\n"));
                }
                reply.push_str("\r\n");
                reply.push_str(&body);
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Self { base, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| format!("{} {}", s.method, s.path.split('?').next().unwrap()))
            .collect()
    }

    fn bodies(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.body.clone())
            .collect()
    }

    fn cli(&self) -> Cli {
        Cli::new()
            .with_env("REKEY_ENDPOINT", &self.base)
            .with_env("REKEY_TOKEN", "rkt_test")
    }
}

fn account(path: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/acct{path}")
}

/// Cosmos DB's regenerateKey as the contract describes it: 202 with both headers, then an operation
/// that is in progress `in_progress` times before it ends as `last`.
fn cosmos_regenerate(in_progress: usize, retry_after: u64, last: Value) -> FakeArm {
    FakeArm::start(move |request, base, earlier| {
        if request.method == "POST" {
            let headers = vec![
                (
                    "Azure-AsyncOperation".into(),
                    format!("{base}/operations/op1?api-version=2024-11-15"),
                ),
                (
                    "Location".into(),
                    format!("{base}/operations/op1/result?api-version=2024-11-15"),
                ),
                ("Retry-After".into(), retry_after.to_string()),
            ];
            return (202, headers, String::new());
        }
        let status = if earlier < in_progress {
            json!({"status": "InProgress"})
        } else {
            last.clone()
        };
        (
            200,
            vec![("Retry-After".into(), retry_after.to_string())],
            status.to_string(),
        )
    })
}

fn regenerate_args() -> Vec<&'static str> {
    vec![
        "cosmosdb",
        "keys",
        "regenerate",
        "-n",
        "acct",
        "-g",
        "rg",
        "--key-kind",
        "secondary",
        "--subscription",
        SUB,
    ]
}

#[test]
fn a_202_regeneration_is_polled_until_it_succeeds() {
    let arm = cosmos_regenerate(2, 0, json!({"status": "Succeeded"}));
    let run = arm.cli().run(&regenerate_args());
    assert_eq!(run.ok(), "");
    assert!(
        !run.stderr.contains("Running"),
        "no spinner off a terminal: {run:?}"
    );
    assert_eq!(
        arm.seen(),
        vec![
            format!("POST {}", account("/regenerateKey")),
            "GET /operations/op1".to_string(),
            "GET /operations/op1".to_string(),
            "GET /operations/op1".to_string(),
        ]
    );
    assert_eq!(arm.bodies()[0], r#"{"keyKind":"secondary"}"#);
}

#[test]
fn a_failed_operation_exits_1_with_its_error() {
    let arm = cosmos_regenerate(
        0,
        0,
        json!({"status": "Failed", "error": {"code": "Conflict", "message": "Another operation is in progress."}}),
    );
    let run = arm.cli().run(&regenerate_args());
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "ERROR: (Conflict) Another operation is in progress.\nCode: Conflict\nMessage: Another operation is in progress.\n"
    );
}

#[test]
fn no_wait_returns_without_polling() {
    let arm = cosmos_regenerate(5, 0, json!({"status": "Succeeded"}));
    let mut args = regenerate_args();
    args.push("--no-wait");
    assert_eq!(arm.cli().run(&args).ok(), "");
    assert_eq!(
        arm.seen(),
        vec![format!("POST {}", account("/regenerateKey"))]
    );
}

#[test]
fn a_spinner_turns_while_polling_on_a_terminal() {
    let arm = cosmos_regenerate(1, 1, json!({"status": "Succeeded"}));
    let mut cmd = arm.cli().command();
    cmd.args(regenerate_args()).arg("--yes");
    let mut session = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
    session.exp_string("Running ..").expect("the spinner shows");
    session.exp_eof().unwrap();
    assert_eq!(arm.seen().len(), 3);
}

#[test]
fn create_waits_for_the_operation_then_prints_the_account() {
    let arm =
        FakeArm::start(
            |request, base, _| match (request.method.as_str(), request.path.as_str()) {
                ("GET", p)
                    if p.starts_with(&format!("/subscriptions/{SUB}/resourcegroups/rg?")) =>
                {
                    (
                        200,
                        vec![],
                        json!({"name": "rg", "location": "chinaeast"}).to_string(),
                    )
                }
                ("PUT", _) => (
                    201,
                    vec![(
                        "Azure-AsyncOperation".into(),
                        format!("{base}/operations/create1"),
                    )],
                    json!({"name": "acct", "properties": {"provisioningState": "Creating"}})
                        .to_string(),
                ),
                ("GET", p) if p.starts_with("/operations/create1") => {
                    (200, vec![], json!({"status": "Succeeded"}).to_string())
                }
                ("GET", _) => (
                    200,
                    vec![],
                    json!({"name": "acct", "properties": {"provisioningState": "Succeeded"}})
                        .to_string(),
                ),
                _ => (500, vec![], String::new()),
            },
        );
    let run = arm.cli().run(&[
        "cosmosdb",
        "create",
        "--name",
        "acct",
        "--kind",
        "GlobalDocumentDB",
        "--locations",
        "China East=0",
        "China North=1",
        "--resource-group",
        "rg",
        "--max-interval",
        "10",
        "--max-staleness-prefix",
        "200",
        "--subscription",
        SUB,
    ]);
    assert_eq!(run.json()["properties"]["provisioningState"], "Succeeded");
    let seen = arm.seen();
    assert_eq!(seen[1], format!("PUT {}", account("")));
    assert_eq!(seen[2], "GET /operations/create1");
    assert_eq!(seen[3], format!("GET {}", account("")));
    let put: Value = serde_json::from_str(&arm.bodies()[1]).unwrap();
    assert_eq!(
        put,
        json!({
            "location": "chinaeast",
            "kind": "GlobalDocumentDB",
            "tags": {},
            "properties": {
                "databaseAccountOfferType": "Standard",
                "locations": [
                    {"locationName": "China East", "failoverPriority": 0, "isZoneRedundant": false},
                    {"locationName": "China North", "failoverPriority": 1, "isZoneRedundant": false}
                ],
                "consistencyPolicy": {
                    "defaultConsistencyLevel": "Session",
                    "maxIntervalInSeconds": 10,
                    "maxStalenessPrefix": 200
                }
            }
        })
    );
}

#[test]
fn quantum_regenerate_answering_204_prints_true_with_pass_thru_only() {
    let arm = FakeArm::start(|_, _, _| (204, vec![], String::new()));
    let args = [
        "quantum",
        "workspace",
        "keys",
        "regenerate",
        "-g",
        "rg",
        "-w",
        "ws1",
        "--key-type",
        "Primary,secondary",
        "--subscription",
        SUB,
    ];
    assert_eq!(arm.cli().run(&args).ok(), "");
    let with: Vec<&str> = args.iter().copied().chain(["--pass-thru"]).collect();
    assert_eq!(arm.cli().run(&with).ok(), "true\n");
    assert_eq!(
        arm.seen()[0],
        format!("POST /subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Quantum/workspaces/ws1/regenerateKey")
    );
    assert_eq!(arm.bodies()[0], r#"{"keys":["Primary","Secondary"]}"#);
    // --what-if with --pass-thru changes nothing and so passes nothing through.
    let what_if: Vec<&str> = with.iter().copied().chain(["--what-if"]).collect();
    let run = arm.cli().run(&what_if);
    assert!(
        run.ok().starts_with(
            "What if: Performing the operation \"Regenerate the primary and secondary keys\""
        ),
        "{run:?}"
    );
    assert_eq!(arm.seen().last().unwrap().split(' ').next(), Some("GET"));
}
