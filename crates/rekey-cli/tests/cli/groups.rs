//! `rekey group create|show|list|exists|delete`.

use crate::helpers::{Cli, Rekeyd};

#[test]
fn group_create_show_list_and_delete_change_the_server() {
    let server = Rekeyd::start();
    let cli = Cli::logged_in(&server);

    let created = cli
        .run(&[
            "group",
            "create",
            "--name",
            "rg1",
            "--location",
            "westus",
            "--tags",
            "team=keys",
            "env",
        ])
        .json();
    assert_eq!(created["name"], "rg1");
    assert_eq!(created["location"], "westus");
    assert_eq!(created["tags"]["team"], "keys");
    assert_eq!(created["tags"]["env"], "");
    assert!(server.group_exists("rg1"));

    // az's short forms: -g names the group as well as -n, -l the location.
    cli.run(&["group", "create", "-g", "rg2", "-l", "eastus"])
        .json();
    assert!(server.group_exists("rg2"));

    let shown = cli.run(&["group", "show", "-n", "rg1"]).json();
    assert_eq!(
        shown["id"],
        format!("/subscriptions/{}/resourceGroups/rg1", server.subscription)
    );
    let by_id = cli
        .run(&["group", "show", "--ids", shown["id"].as_str().unwrap()])
        .json();
    assert_eq!(by_id, shown);

    let list = cli.run(&["group", "list", "--query", "[].name"]).json();
    assert_eq!(list, serde_json::json!(["rg1", "rg2"]));

    assert_eq!(cli.run(&["group", "exists", "-n", "rg1"]).ok(), "true\n");
    assert_eq!(cli.run(&["group", "delete", "-n", "rg1", "--yes"]).ok(), "");
    assert!(!server.group_exists("rg1"));
    assert_eq!(cli.run(&["group", "exists", "-n", "rg1"]).ok(), "false\n");

    let missing = cli.run(&["group", "show", "-g", "rg1"]);
    assert_eq!(missing.code, 3, "{missing:?}");
    assert_eq!(
        missing.stderr,
        "ERROR: (ResourceGroupNotFound) Resource group 'rg1' could not be found.\n\
         Code: ResourceGroupNotFound\nMessage: Resource group 'rg1' could not be found.\n"
    );
    assert!(missing.stdout.is_empty());
}

#[test]
fn group_delete_off_a_terminal_needs_yes_and_deletes_nothing_without_it() {
    let server = Rekeyd::start();
    server.create_group("keep");
    let cli = Cli::logged_in(&server);
    let run = cli.run(&["group", "delete", "-n", "keep"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("Use --yes"), "{run:?}");
    assert!(server.group_exists("keep"));
}

#[test]
fn group_ids_of_another_shape_are_usage_errors() {
    let server = Rekeyd::start();
    let cli = Cli::logged_in(&server);
    let run = cli.run(&[
        "group",
        "show",
        "--ids",
        "/subscriptions/nope/resourceGroups/rg",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = cli.run(&["group", "show", "-n", "rg", "--ids", "/x"]);
    assert_eq!(run.code, 2, "{run:?}");
}
