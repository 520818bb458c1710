//! `rekey cognitiveservices account create|show|list|delete` and `account keys list|regenerate`.

use serde_json::json;

use crate::helpers::{Cli, Rekeyd};

#[test]
fn account_create_show_list_and_delete_change_the_server() {
    let server = Rekeyd::start();
    server.create_group("rg1");
    server.create_group("rg2");
    let cli = Cli::logged_in(&server);

    let created = cli
        .run(&[
            "cognitiveservices",
            "account",
            "create",
            "-n",
            "acct1",
            "-g",
            "rg1",
            "--kind",
            "TextAnalytics",
            "--sku",
            "S0",
            "-l",
            "westus",
            "--yes",
        ])
        .json();
    assert_eq!(created["name"], "acct1");
    assert_eq!(created["kind"], "TextAnalytics");
    assert_eq!(created["sku"]["name"], "S0");
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");
    assert!(server.account_exists("rg1", "acct1"));
    // Without -l the account takes its group's location.
    let second = cli
        .run(&[
            "cognitiveservices",
            "account",
            "create",
            "--name",
            "acct2",
            "--resource-group",
            "rg2",
            "--kind",
            "CognitiveServices",
            "--sku-name",
            "S0",
        ])
        .json();
    assert_eq!(second["location"], "westus");

    let shown = cli
        .run(&[
            "cognitiveservices",
            "account",
            "show",
            "-n",
            "acct1",
            "-g",
            "rg1",
        ])
        .json();
    assert_eq!(shown, created);
    let id = shown["id"].as_str().unwrap();
    assert_eq!(
        cli.run(&["cognitiveservices", "account", "show", "--ids", id])
            .json(),
        created
    );

    let in_group = cli.run(&[
        "cognitiveservices",
        "account",
        "list",
        "-g",
        "rg1",
        "--query",
        "[].name",
    ]);
    assert_eq!(in_group.json(), json!(["acct1"]));
    let everywhere = cli.run(&[
        "cognitiveservices",
        "account",
        "list",
        "--query",
        "sort([].name)",
    ]);
    assert_eq!(everywhere.json(), json!(["acct1", "acct2"]));

    assert_eq!(
        cli.run(&[
            "cognitiveservices",
            "account",
            "delete",
            "-n",
            "acct1",
            "-g",
            "rg1"
        ])
        .ok(),
        ""
    );
    assert!(!server.account_exists("rg1", "acct1"));
    assert_eq!(server.account_keys("rg1", "acct1"), Err(404));
    assert_eq!(
        cli.run(&[
            "cognitiveservices",
            "account",
            "delete",
            "--ids",
            second["id"].as_str().unwrap()
        ])
        .ok(),
        ""
    );
    assert!(!server.account_exists("rg2", "acct2"));
}

#[test]
fn keys_list_prints_the_keys_rekeyd_holds() {
    let (server, cli) = Rekeyd::with_account();
    let keys = cli
        .run(&[
            "cognitiveservices",
            "account",
            "keys",
            "list",
            "-n",
            "acct",
            "-g",
            "rg",
        ])
        .json();
    assert_eq!(keys, server.account_keys("rg", "acct").unwrap());
    let key1 = cli.run(&[
        "cognitiveservices",
        "account",
        "keys",
        "list",
        "-n",
        "acct",
        "-g",
        "rg",
        "--query",
        "key1",
        "-o",
        "tsv",
    ]);
    assert_eq!(key1.ok(), format!("{}\n", keys["key1"].as_str().unwrap()));
}

#[test]
fn regenerate_key1_replaces_key1_and_leaves_key2() {
    let (server, cli) = Rekeyd::with_account();
    let before = server.account_keys("rg", "acct").unwrap();

    let printed = cli
        .run(&[
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
        ])
        .json();
    let after = server.account_keys("rg", "acct").unwrap();
    assert_eq!(printed, after);
    assert_ne!(after["key1"], before["key1"]);
    assert_eq!(after["key2"], before["key2"]);

    // PowerShell spells it Key2; both spellings work.
    cli.run(&[
        "cognitiveservices",
        "account",
        "keys",
        "regenerate",
        "-n",
        "acct",
        "-g",
        "rg",
        "--key-name",
        "Key2",
        "--yes",
    ])
    .json();
    let last = server.account_keys("rg", "acct").unwrap();
    assert_eq!(last["key1"], after["key1"]);
    assert_ne!(last["key2"], after["key2"]);
}

#[test]
fn ids_act_on_every_account_named_and_print_a_list() {
    let server = Rekeyd::start();
    server.create_group("rg");
    server.create_account("rg", "one");
    server.create_account("rg", "two");
    let cli = Cli::logged_in(&server);
    let one = server.account_path("rg", "one");
    let two = server.account_path("rg", "two");
    let before = [
        server.account_keys("rg", "one").unwrap(),
        server.account_keys("rg", "two").unwrap(),
    ];

    let listed = cli
        .run(&[
            "cognitiveservices",
            "account",
            "keys",
            "list",
            "--ids",
            &one,
            &two,
        ])
        .json();
    assert_eq!(listed, json!(before));

    let printed = cli
        .run(&[
            "cognitiveservices",
            "account",
            "keys",
            "regenerate",
            "--ids",
            &one,
            &two,
            "--key-name",
            "key2",
        ])
        .json();
    let after = [
        server.account_keys("rg", "one").unwrap(),
        server.account_keys("rg", "two").unwrap(),
    ];
    assert_eq!(printed, json!(after));
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a["key1"], b["key1"]);
        assert_ne!(a["key2"], b["key2"]);
    }
}

#[test]
fn what_if_prints_the_operation_and_changes_nothing() {
    let (server, cli) = Rekeyd::with_account();
    let before = server.account_keys("rg", "acct").unwrap();

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
        "--what-if",
    ]);
    assert_eq!(
        run.ok(),
        format!(
            "What if: Performing the operation \"Regenerate key1\" on target \"{}\".\n",
            server.account_path("rg", "acct")
        )
    );
    assert_eq!(server.account_keys("rg", "acct").unwrap(), before);

    let missing = cli.run(&[
        "cognitiveservices",
        "account",
        "keys",
        "regenerate",
        "-n",
        "nope",
        "-g",
        "rg",
        "--key-name",
        "key1",
        "--what-if",
    ]);
    assert_eq!(missing.code, 3, "{missing:?}");
    assert!(
        missing.stderr.starts_with("ERROR: (ResourceNotFound) "),
        "{missing:?}"
    );
}

#[test]
fn a_missing_account_exits_3_with_azs_error_lines() {
    let server = Rekeyd::start();
    server.create_group("rg");
    let cli = Cli::logged_in(&server);
    for args in [
        vec![
            "cognitiveservices",
            "account",
            "show",
            "-n",
            "nope",
            "-g",
            "rg",
        ],
        vec![
            "cognitiveservices",
            "account",
            "keys",
            "list",
            "-n",
            "nope",
            "-g",
            "rg",
        ],
        vec![
            "cognitiveservices",
            "account",
            "keys",
            "regenerate",
            "-n",
            "nope",
            "-g",
            "rg",
            "--key-name",
            "key1",
        ],
    ] {
        let run = cli.run(&args);
        assert_eq!(run.code, 3, "{run:?}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 3, "{run:?}");
        assert!(lines[0].starts_with(
            "ERROR: (ResourceNotFound) The Resource 'Microsoft.CognitiveServices/accounts/nope'"
        ));
        assert_eq!(lines[1], "Code: ResourceNotFound");
        assert!(lines[2].starts_with("Message: The Resource"));
    }
    let no_group = cli.run(&[
        "cognitiveservices",
        "account",
        "create",
        "-n",
        "a1",
        "-g",
        "nogroup",
        "--kind",
        "TextAnalytics",
        "--sku",
        "S0",
        "-l",
        "westus",
    ]);
    assert_eq!(no_group.code, 3, "{no_group:?}");
    assert!(
        no_group.stderr.contains("(ResourceGroupNotFound)"),
        "{no_group:?}"
    );
}

#[test]
fn service_errors_exit_1_and_usage_errors_exit_2() {
    let server = Rekeyd::start();
    server.create_group("rg");
    let cli = Cli::logged_in(&server);
    // The server refuses the name: a service error.
    let bad_name = cli.run(&[
        "cognitiveservices",
        "account",
        "create",
        "-n",
        "a b",
        "-g",
        "rg",
        "--kind",
        "TextAnalytics",
        "--sku",
        "S0",
    ]);
    assert_eq!(bad_name.code, 1, "{bad_name:?}");
    assert!(
        bad_name.stderr.contains("(InvalidResourceName)"),
        "{bad_name:?}"
    );

    for args in [
        vec!["cognitiveservices", "account", "keys", "regenerate", "-n", "a", "-g", "rg", "--key-name", "key3"],
        vec!["cognitiveservices", "account", "keys", "list", "-n", "a"],
        vec!["cognitiveservices", "account", "keys", "list", "--ids", "/subscriptions/x"],
        vec![
            "cognitiveservices", "account", "keys", "list", "--ids",
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Quantum/workspaces/w",
        ],
        vec!["cognitiveservices", "account", "show", "--query", "[?"],
        vec!["cognitiveservices", "account", "list", "-o", "xml"],
    ] {
        let run = cli.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stdout.is_empty());
    }
}
