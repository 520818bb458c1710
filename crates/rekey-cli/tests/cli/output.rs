//! `--output`, `--query`, `--only-show-errors`, `--debug`, `--help` and `completion`: json and table
//! output are compared whole against snapshots, with random ids and keys replaced by placeholders.

use crate::helpers::{redact, Cli, Rekeyd};

/// A server with group `rg` and account `acct`, a CLI logged in to it, and the placeholders for
/// every random value the outputs contain.
fn setup() -> (Rekeyd, Cli, Vec<(String, String)>) {
    let (server, cli) = Rekeyd::with_account();
    let keys = server.account_keys("rg", "acct").unwrap();
    let account = server
        .call(
            "GET",
            &format!(
                "{}?api-version=2025-09-01",
                server.account_path("rg", "acct")
            ),
            None,
        )
        .1;
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let pairs = vec![
        (text(&keys["key1"]), "<key1>".to_string()),
        (text(&keys["key2"]), "<key2>".to_string()),
        // The etag is a quoted UUID, which JSON output escapes: replace the UUID alone.
        (
            text(&account["etag"]).trim_matches('"').to_string(),
            "<etag>".to_string(),
        ),
        (
            text(&account["properties"]["dateCreated"]),
            "<created>".to_string(),
        ),
        (
            text(&account["properties"]["internalId"]),
            "<internal-id>".to_string(),
        ),
        (server.base.clone(), "<endpoint>".to_string()),
        (server.subscription.clone(), "<subscription>".to_string()),
    ];
    (server, cli, pairs)
}

fn redacted(text: &str, pairs: &[(String, String)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    redact(text, &pairs)
}

#[test]
fn keys_list_prints_json_and_table_like_az() {
    let (_server, cli, pairs) = setup();
    let keys = [
        "cognitiveservices",
        "account",
        "keys",
        "list",
        "-n",
        "acct",
        "-g",
        "rg",
    ];
    insta::assert_snapshot!("keys_list_json", redacted(cli.run(&keys).ok(), &pairs));
    let table: Vec<&str> = keys.iter().copied().chain(["-o", "table"]).collect();
    insta::assert_snapshot!("keys_list_table", redacted(cli.run(&table).ok(), &pairs));
}

#[test]
fn account_show_prints_json_and_table_like_az() {
    let (_server, cli, pairs) = setup();
    let show = [
        "cognitiveservices",
        "account",
        "show",
        "-n",
        "acct",
        "-g",
        "rg",
    ];
    insta::assert_snapshot!("account_show_json", redacted(cli.run(&show).ok(), &pairs));
    let table: Vec<&str> = show.iter().copied().chain(["--output", "table"]).collect();
    insta::assert_snapshot!("account_show_table", redacted(cli.run(&table).ok(), &pairs));
}

#[test]
fn group_list_prints_a_table_with_a_row_per_group() {
    let (server, cli, pairs) = setup();
    server.create_group("second-group");
    let run = cli.run(&["group", "list", "-o", "table"]);
    insta::assert_snapshot!("group_list_table", redacted(run.ok(), &pairs));
}

#[test]
fn tsv_yaml_jsonc_and_none_formats() {
    let (_server, cli, pairs) = setup();
    let keys = [
        "cognitiveservices",
        "account",
        "keys",
        "list",
        "-n",
        "acct",
        "-g",
        "rg",
    ];
    let with = |extra: &[&str]| -> String {
        let args: Vec<&str> = keys.iter().copied().chain(extra.iter().copied()).collect();
        redacted(cli.run(&args).ok(), &pairs)
    };
    assert_eq!(with(&["-o", "tsv"]), "<key1>\t<key2>\n");
    assert_eq!(with(&["-o", "yaml"]), "key1: <key1>\nkey2: <key2>\n");
    assert_eq!(with(&["-o", "none"]), "");
    let jsonc = with(&["-o", "jsonc"]);
    assert!(jsonc.contains("\x1b["), "jsonc is coloured: {jsonc:?}");
    // As in az, a list prints one row per item, and a list inside it one tab-separated row.
    assert_eq!(
        with(&["--query", "[key2, key1]", "-o", "tsv"]),
        "<key2>\n<key1>\n"
    );
    assert_eq!(
        with(&["--query", "[[key2, key1]]", "-o", "tsv"]),
        "<key2>\t<key1>\n"
    );
    assert_eq!(
        with(&["--query", "{first: key1}"]),
        "{\n  \"first\": \"<key1>\"\n}\n"
    );
}

#[test]
fn debug_traces_requests_and_replies_with_keys_and_token_masked() {
    let (server, cli, _pairs) = setup();
    let keys = server.account_keys("rg", "acct").unwrap();
    let run = cli.run(&[
        "cognitiveservices",
        "account",
        "keys",
        "regenerate",
        "-n",
        "acct",
        "-g",
        "rg",
        "--key-name",
        "key1",
        "--debug",
    ]);
    let printed = run.json();
    let trace = &run.stderr;
    assert!(trace.contains("DEBUG: Request URL: '"), "{trace}");
    assert!(
        trace.contains("/regenerateKey?api-version=2025-09-01'"),
        "{trace}"
    );
    assert!(
        trace.contains("DEBUG: Request body:\nDEBUG: {\"keyName\":\"Key1\"}"),
        "{trace}"
    );
    assert!(trace.contains("DEBUG: Response status: 200"), "{trace}");
    assert!(trace.contains("'Authorization': 'REDACTED'"), "{trace}");
    assert!(
        trace.contains("{\"key1\":\"REDACTED\",\"key2\":\"REDACTED\"}"),
        "{trace}"
    );
    for secret in [
        server.token.as_str(),
        keys["key1"].as_str().unwrap(),
        keys["key2"].as_str().unwrap(),
        printed["key1"].as_str().unwrap(),
    ] {
        assert!(
            !trace.contains(secret),
            "a secret leaked into --debug: {trace}"
        );
    }
}

#[test]
fn only_show_errors_silences_warnings_but_not_errors() {
    let server = Rekeyd::start();
    let cli = Cli::logged_in(&server);
    // The deprecated spelling warns before it runs (and fails here: the account does not exist).
    let args = ["cosmosdb", "list-keys", "-n", "docdb", "-g", "rg"];
    let loud = cli.run(&args);
    assert!(
        loud.stderr
            .starts_with("WARNING: This command has been deprecated"),
        "{loud:?}"
    );
    let quiet_args: Vec<&str> = args.iter().copied().chain(["--only-show-errors"]).collect();
    let quiet = cli.run(&quiet_args);
    assert!(!quiet.stderr.contains("WARNING"), "{quiet:?}");
    assert!(quiet.stderr.starts_with("ERROR: "), "{quiet:?}");
    assert_eq!(quiet.code, loud.code);
}

#[test]
fn help_shows_examples_for_every_command() {
    let cli = Cli::new();
    for args in [
        vec!["--help"],
        vec!["login", "--help"],
        vec!["account", "set", "--help"],
        vec!["group", "create", "--help"],
        vec![
            "cognitiveservices",
            "account",
            "keys",
            "regenerate",
            "--help",
        ],
        vec!["cosmosdb", "keys", "regenerate", "--help"],
        vec!["quantum", "workspace", "keys", "regenerate", "--help"],
    ] {
        let run = cli.run(&args);
        assert!(
            run.ok().contains("Examples:\n  rekey "),
            "{args:?}: {run:?}"
        );
    }
    let help = cli.run(&[
        "cognitiveservices",
        "account",
        "keys",
        "regenerate",
        "--help",
    ]);
    for flag in [
        "-n, --name",
        "-g, --resource-group",
        "--ids",
        "--key-name",
        "-y, --yes",
        "--what-if",
    ] {
        assert!(help.stdout.contains(flag), "{flag}: {}", help.stdout);
    }
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    let cli = Cli::new();
    let bash = cli.run(&["completion", "bash"]);
    assert!(bash.ok().contains("complete -F _rekey"), "{bash:?}");
    assert!(bash.stdout.contains("cognitiveservices"));
    assert!(cli
        .run(&["completion", "zsh"])
        .ok()
        .starts_with("#compdef rekey"));
    assert!(cli
        .run(&["completion", "fish"])
        .ok()
        .contains("complete -c rekey"));
    assert_eq!(cli.run(&["completion", "tcsh"]).code, 2);
}
