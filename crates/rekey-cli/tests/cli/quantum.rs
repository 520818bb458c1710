//! `rekey quantum workspace …` against a live rekeyd: create, show, list, delete, keys and
//! regeneration (204 and `--pass-thru`).

use serde_json::json;

use crate::helpers::{Cli, Rekeyd, QUANTUM};

fn with_workspace(name: &str) -> (Rekeyd, Cli) {
    let server = Rekeyd::start();
    server.create_group("rg");
    let cli = Cli::logged_in(&server);
    cli.run(&[
        "quantum",
        "workspace",
        "create",
        "-w",
        name,
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
    (server, cli)
}

#[test]
fn quantum_workspace_create_show_list_and_delete_change_the_server() {
    let server = Rekeyd::start();
    server.create_group("rg");
    let cli = Cli::logged_in(&server);

    let created = cli
        .run(&[
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
            "-r",
            "Microsoft/Basic",
        ])
        .json();
    assert_eq!(created["name"], "ws1");
    let path = format!(
        "{}?api-version={}",
        server.resource_path(QUANTUM.0, "rg", "ws1"),
        QUANTUM.1
    );
    assert_eq!(server.call("GET", &path, None).0, 200);

    assert_eq!(
        cli.run(&["quantum", "workspace", "show", "-w", "ws1", "-g", "rg"])
            .json()["id"],
        created["id"]
    );
    assert_eq!(
        cli.run(&["quantum", "workspace", "show", "-n", "ws1", "-g", "rg"])
            .json()["id"],
        created["id"]
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        cli.run(&["quantum", "workspace", "show", "--ids", id])
            .json()["id"],
        created["id"]
    );
    assert_eq!(
        cli.run(&[
            "quantum",
            "workspace",
            "list",
            "-g",
            "rg",
            "--query",
            "[].name"
        ])
        .json(),
        json!(["ws1"])
    );

    assert_eq!(
        cli.run(&["quantum", "workspace", "delete", "-w", "ws1", "-g", "rg"])
            .ok(),
        ""
    );
    assert_eq!(server.call("GET", &path, None).0, 404);
}

#[test]
fn quantum_keys_list_shows_both_keys_and_connection_strings() {
    let (server, cli) = with_workspace("ws2");
    let keys = cli
        .run(&[
            "quantum",
            "workspace",
            "keys",
            "list",
            "-w",
            "ws2",
            "-g",
            "rg",
        ])
        .json();
    assert_eq!(keys, server.action(QUANTUM, "rg", "ws2", "listKeys"));
    assert!(keys["primaryKey"]["key"].is_string(), "{keys}");
    assert!(keys["secondaryKey"]["createdAt"].is_string(), "{keys}");
    assert!(
        keys["primaryConnectionString"]
            .as_str()
            .unwrap()
            .contains("ApiKey="),
        "{keys}"
    );
}

#[test]
fn quantum_regenerate_primary_replaces_only_the_primary_key_and_pass_thru_prints_true() {
    let (server, cli) = with_workspace("ws3");
    let before = server.action(QUANTUM, "rg", "ws3", "listKeys");
    let run = cli.run(&[
        "quantum",
        "workspace",
        "keys",
        "regenerate",
        "-w",
        "ws3",
        "-g",
        "rg",
        "--key-type",
        "Primary",
        "--pass-thru",
    ]);
    assert_eq!(run.ok(), "true\n");
    let after = server.action(QUANTUM, "rg", "ws3", "listKeys");
    assert_ne!(after["primaryKey"]["key"], before["primaryKey"]["key"]);
    assert_eq!(after["secondaryKey"], before["secondaryKey"]);

    let run = cli.run(&[
        "quantum",
        "workspace",
        "keys",
        "regenerate",
        "-w",
        "ws3",
        "-g",
        "rg",
        "--key-type",
        "Primary,Secondary",
    ]);
    assert_eq!(run.ok(), "");
    let last = server.action(QUANTUM, "rg", "ws3", "listKeys");
    assert_ne!(last["primaryKey"]["key"], after["primaryKey"]["key"]);
    assert_ne!(last["secondaryKey"]["key"], after["secondaryKey"]["key"]);
}

#[test]
fn quantum_what_if_changes_nothing() {
    let (server, cli) = with_workspace("ws4");
    let before = server.action(QUANTUM, "rg", "ws4", "listKeys");
    let run = cli.run(&[
        "quantum",
        "workspace",
        "keys",
        "regenerate",
        "-w",
        "ws4",
        "-g",
        "rg",
        "--key-type",
        "Secondary",
        "--what-if",
        "--pass-thru",
    ]);
    assert!(
        run.ok()
            .starts_with("What if: Performing the operation \"Regenerate the secondary key\""),
        "{run:?}"
    );
    assert_eq!(server.action(QUANTUM, "rg", "ws4", "listKeys"), before);
}
