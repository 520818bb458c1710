//! `keys list` and rekeyd's maximum key age: a warning on stderr for each key `listKeys` marks past
//! its maximum age (`x-rekey-keyAge`), naming the key and the command that renews it, while stdout
//! keeps az's shape. Keys are aged by moving their creation time back in rekeyd's own database.

use serde_json::Value;

use crate::helpers::{without_extensions, Cli, Rekeyd, COSMOS, CS_VERSION, QUANTUM};

/// Moves every `slot` key's creation `days` into the past, straight in rekeyd's SQLite database
/// (rekeyd reads `created_at` from it on each `listKeys`).
fn backdate(server: &Rekeyd, slot: &str, days: i64) {
    use sqlx::Connection as _;
    let url = format!(
        "sqlite://{}",
        server.dir.path().join("data/rekey.db").display()
    );
    let micros = days * 86_400 * 1_000_000;
    let sql =
        format!("UPDATE key_slots SET created_at = created_at - {micros} WHERE slot = '{slot}'");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let done = sqlx::query(&sql).execute(&mut conn).await.unwrap();
            assert!(done.rows_affected() > 0, "no {slot} key to backdate");
            conn.close().await.unwrap();
        });
}

/// Cognitive Services account `acct` in `rg` with its own maximum key age of one day.
fn account_with_max_age() -> (Rekeyd, Cli) {
    let server = Rekeyd::start();
    server.create_group("rg");
    let (status, body) = server.call(
        "PUT",
        &format!(
            "{}?api-version={CS_VERSION}",
            server.account_path("rg", "acct")
        ),
        Some(
            r#"{"location":"westus","kind":"TextAnalytics","sku":{"name":"S0"},
                "properties":{"x-rekey-maxKeyAgeDays":1}}"#,
        ),
    );
    assert_eq!(status, 201, "{body}");
    let cli = Cli::logged_in(&server);
    (server, cli)
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("WARNING:"))
        .collect()
}

#[test]
fn keys_list_warns_on_stderr_for_an_overdue_key_and_prints_azs_shape() {
    let (server, cli) = account_with_max_age();
    backdate(&server, "key1", 40);

    let run = cli.run(&[
        "cognitiveservices",
        "account",
        "keys",
        "list",
        "-n",
        "acct",
        "-g",
        "rg",
    ]);
    let listed = run.json();
    assert_eq!(
        warnings(&run.stderr),
        [
            "WARNING: key1 of acct is 40 days old, past its maximum age of 1 day; regenerate it \
             (rekey cognitiveservices account keys regenerate --key-name key1 -n acct -g rg)."
        ],
        "{run:?}"
    );
    // stdout is exactly az's two keys: no extension field, the same keys rekeyd holds.
    assert_eq!(listed, server.account_keys("rg", "acct").unwrap());
    let fields: Vec<&String> = listed.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["key1", "key2"]);

    // `--only-show-errors` silences the warning as it does every other.
    let quiet = cli.run(&[
        "cognitiveservices",
        "account",
        "keys",
        "list",
        "-n",
        "acct",
        "-g",
        "rg",
        "--only-show-errors",
    ]);
    assert_eq!(quiet.json(), listed);
    assert!(warnings(&quiet.stderr).is_empty(), "{quiet:?}");
}

#[test]
fn keys_list_says_nothing_about_keys_younger_than_the_maximum_age() {
    let (server, cli) = account_with_max_age();
    // rekeyd does report the key's age against a maximum, so the silence below is the CLI's.
    let path = format!(
        "{}/listKeys?api-version={CS_VERSION}",
        server.account_path("rg", "acct")
    );
    let (_, raw) = server.call("POST", &path, None);
    assert_eq!(raw["x-rekey-keyAge"]["key1"]["overdue"], false, "{raw}");
    assert_eq!(raw["x-rekey-keyAge"]["key1"]["maxKeyAgeDays"], 1, "{raw}");

    let run = cli.run(&[
        "cognitiveservices",
        "account",
        "keys",
        "list",
        "-n",
        "acct",
        "-g",
        "rg",
    ]);
    run.json();
    assert!(warnings(&run.stderr).is_empty(), "{run:?}");
}

#[test]
fn cosmosdb_and_quantum_keys_list_warn_with_their_own_regenerate_command() {
    let server = Rekeyd::start();
    server.create_group("rg");
    // The subscription's default maximum age applies to resources without their own.
    let (status, body) = server.call(
        "PUT",
        &format!(
            "/subscriptions/{}/providers/Rekey/keyPolicy?api-version=2026-01-01",
            server.subscription
        ),
        Some(r#"{"properties":{"maxKeyAgeDays":30}}"#),
    );
    assert!(status == 200 || status == 201, "{status} {body}");
    let cli = Cli::logged_in(&server);
    cli.run(&["cosmosdb", "create", "-n", "docdb1", "-g", "rg"])
        .json();
    cli.run(&[
        "quantum",
        "workspace",
        "create",
        "-w",
        "ws1",
        "-g",
        "rg",
        "-l",
        "westus",
        "-a",
        "storage1",
        "--enable-api-key",
        "true",
    ])
    .json();
    // Both resources name their first slot `primary`.
    backdate(&server, "primary", 40);

    let cosmos = cli.run(&["cosmosdb", "keys", "list", "-n", "docdb1", "-g", "rg"]);
    assert_eq!(
        cosmos.json(),
        server.action(COSMOS, "rg", "docdb1", "listKeys"),
        "az's shape"
    );
    assert_eq!(
        warnings(&cosmos.stderr),
        [
            "WARNING: primary of docdb1 is 40 days old, past its maximum age of 30 days; \
             regenerate it (rekey cosmosdb keys regenerate --key-kind primary -n docdb1 -g rg)."
        ],
        "{cosmos:?}"
    );

    let quantum = cli.run(&[
        "quantum",
        "workspace",
        "keys",
        "list",
        "-w",
        "ws1",
        "-g",
        "rg",
    ]);
    let listed: Value = quantum.json();
    assert_eq!(listed, without_extensions(listed.clone()));
    assert_eq!(listed, server.action(QUANTUM, "rg", "ws1", "listKeys"));
    assert_eq!(
        warnings(&quantum.stderr),
        [
            "WARNING: primary of ws1 is 40 days old, past its maximum age of 30 days; \
             regenerate it (rekey quantum workspace keys regenerate --key-type Primary -w ws1 -g rg)."
        ],
        "{quantum:?}"
    );
}
