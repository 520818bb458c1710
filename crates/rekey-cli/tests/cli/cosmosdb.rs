//! `rekey cosmosdb …` against a live rekeyd: create, show, list, delete, keys and regeneration
//! through the long-running operation.

use serde_json::json;

use crate::helpers::{Cli, Rekeyd, COSMOS};

fn with_account(name: &str) -> (Rekeyd, Cli) {
    let server = Rekeyd::start();
    server.create_group("rg");
    let cli = Cli::logged_in(&server);
    cli.run(&["cosmosdb", "create", "-n", name, "-g", "rg"])
        .json();
    (server, cli)
}

#[test]
fn cosmosdb_create_show_list_and_delete_change_the_server() {
    let server = Rekeyd::start();
    server.create_group("rg");
    let cli = Cli::logged_in(&server);

    let created = cli
        .run(&["cosmosdb", "create", "-n", "docdb1", "-g", "rg"])
        .json();
    assert_eq!(created["name"], "docdb1");
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");
    let path = format!(
        "{}?api-version={}",
        server.resource_path(COSMOS.0, "rg", "docdb1"),
        COSMOS.1
    );
    assert_eq!(server.call("GET", &path, None).0, 200);

    let shown = cli
        .run(&["cosmosdb", "show", "-n", "docdb1", "-g", "rg"])
        .json();
    assert_eq!(shown["id"], created["id"]);
    let by_id = cli
        .run(&["cosmosdb", "show", "--ids", created["id"].as_str().unwrap()])
        .json();
    assert_eq!(by_id["id"], created["id"]);
    assert_eq!(
        cli.run(&["cosmosdb", "list", "-g", "rg", "--query", "[].name"])
            .json(),
        json!(["docdb1"])
    );
    assert_eq!(
        cli.run(&["cosmosdb", "list", "--query", "[].name"]).json(),
        json!(["docdb1"])
    );

    assert_eq!(
        cli.run(&["cosmosdb", "delete", "-n", "docdb1", "-g", "rg", "--yes"])
            .ok(),
        ""
    );
    assert_eq!(server.call("GET", &path, None).0, 404);
    let missing = cli.run(&["cosmosdb", "show", "-n", "docdb1", "-g", "rg"]);
    assert_eq!(missing.code, 3, "{missing:?}");
    assert!(
        missing.stderr.contains("\nCode: ResourceNotFound\n"),
        "{missing:?}"
    );
}

#[test]
fn cosmosdb_keys_list_prints_keys_read_only_keys_and_connection_strings() {
    let (server, cli) = with_account("docdb2");
    let base = ["cosmosdb", "keys", "list", "-n", "docdb2", "-g", "rg"];
    let with = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        cli.run(&args).json()
    };
    let keys = with(&[]);
    assert_eq!(keys, server.action(COSMOS, "rg", "docdb2", "listKeys"));
    assert_eq!(keys.as_object().unwrap().len(), 4, "{keys}");
    assert_eq!(with(&["--type", "keys"]), keys);
    assert_eq!(
        with(&["--type", "read-only-keys"]),
        server.action(COSMOS, "rg", "docdb2", "readonlykeys")
    );
    let strings = with(&["--type", "connection-strings"]);
    assert_eq!(
        strings,
        server.action(COSMOS, "rg", "docdb2", "listConnectionStrings")
    );
    assert_eq!(strings["connectionStrings"].as_array().unwrap().len(), 4);
}

#[test]
fn cosmosdb_regenerate_each_kind_replaces_only_that_key() {
    let (server, cli) = with_account("docdb3");
    for (kind, field) in [
        ("primary", "primaryMasterKey"),
        ("secondary", "secondaryMasterKey"),
        ("primaryReadonly", "primaryReadonlyMasterKey"),
        ("secondaryReadonly", "secondaryReadonlyMasterKey"),
    ] {
        let before = server.action(COSMOS, "rg", "docdb3", "listKeys");
        let run = cli.run(&[
            "cosmosdb",
            "keys",
            "regenerate",
            "-n",
            "docdb3",
            "-g",
            "rg",
            "--key-kind",
            kind,
        ]);
        assert_eq!(run.ok(), "");
        let after = server.action(COSMOS, "rg", "docdb3", "listKeys");
        for (name, value) in after.as_object().unwrap() {
            if name == field {
                assert_ne!(value, &before[name], "{kind}");
            } else {
                assert_eq!(value, &before[name], "{kind} changed {name}");
            }
        }
    }
}

#[test]
fn cosmosdb_what_if_changes_nothing() {
    let (server, cli) = with_account("docdb4");
    let before = server.action(COSMOS, "rg", "docdb4", "listKeys");
    let run = cli.run(&[
        "cosmosdb",
        "keys",
        "regenerate",
        "-n",
        "docdb4",
        "-g",
        "rg",
        "--key-kind",
        "secondary",
        "--what-if",
    ]);
    assert!(
        run.ok()
            .starts_with("What if: Performing the operation \"Regenerate the secondary key\""),
        "{run:?}"
    );
    assert_eq!(server.action(COSMOS, "rg", "docdb4", "listKeys"), before);
}
