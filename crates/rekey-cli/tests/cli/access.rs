//! `rekey token create|list|revoke`, `rekey role assignment create|list|delete`, `rekey role
//! definition list`, `rekey monitor activity-log list` and `rekey audit verify`.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{Cli, Rekeyd};

const KEY_OPERATOR_ID: &str = "5d1d1c4e-7a0b-4f3e-9b8a-2c6e4f1a0b7d";

/// A CLI that acts with `token` instead of the bootstrap owner's.
fn cli_with_token(server: &Rekeyd, token: &str) -> Cli {
    Cli::new()
        .with_env("REKEY_ENDPOINT", &server.base)
        .with_env("REKEY_TOKEN", token)
}

/// Creates a token with `rekey token create` and returns (principalId, token).
fn create_token(cli: &Cli, name: &str) -> (String, String) {
    let created = cli.run(&["token", "create", "--name", name]).json();
    let field = |k: &str| {
        created[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k}: {created}"))
    };
    (field("principalId").to_string(), field("token").to_string())
}

#[test]
fn a_new_token_lists_keys_only_after_a_role_is_assigned_and_not_after_revoke() {
    let (server, owner) = Rekeyd::with_account();
    let account = server.account_path("rg", "acct");

    let created = owner
        .run(&["token", "create", "--name", "ci", "--expires-in", "1d"])
        .json();
    let principal = created["principalId"].as_str().unwrap().to_string();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(created["expiresAt"].is_string(), "{created}");
    let listed = owner.run(&["token", "list"]).json();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["principalId"] == principal.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(entry["name"], "ci");
    assert!(
        !listed.to_string().contains(&token),
        "the token is shown only by create"
    );

    let ci = cli_with_token(&server, &token);
    let keys_list = [
        "cognitiveservices",
        "account",
        "keys",
        "list",
        "--ids",
        account.as_str(),
    ];
    let refused = ci.run(&keys_list);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("AuthorizationFailed"),
        "{refused:?}"
    );

    let assigned = owner
        .run(&[
            "role",
            "assignment",
            "create",
            "--assignee",
            &principal,
            "--role",
            "Key Operator",
            "--scope",
            &account,
        ])
        .json();
    assert_eq!(assigned["properties"]["principalId"], principal.as_str());
    assert_eq!(assigned["properties"]["scope"], account.as_str());
    assert!(assigned["properties"]["roleDefinitionId"]
        .as_str()
        .unwrap()
        .ends_with(KEY_OPERATOR_ID));
    assert_eq!(
        ci.run(&keys_list).json(),
        server.account_keys("rg", "acct").unwrap()
    );

    owner.run(&["token", "revoke", "--id", &principal]).ok();
    let revoked = ci.run(&keys_list);
    assert_eq!(revoked.code, 1, "{revoked:?}");
    let listed = owner.run(&["token", "list"]).json();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["principalId"] == principal.as_str() && t["revoked"] == true));
}

#[test]
fn role_assignment_list_shows_an_assignment_and_delete_removes_it() {
    let (server, owner) = Rekeyd::with_account();
    let (principal, _) = create_token(&owner, "reader");
    let group = format!("/subscriptions/{}/resourceGroups/rg", server.subscription);

    let reader = owner
        .run(&["role", "definition", "list", "--name", "Reader"])
        .json();
    assert_eq!(reader.as_array().unwrap().len(), 1, "{reader}");
    assert_eq!(reader[0]["properties"]["roleName"], "Reader");

    let assigned = owner
        .run(&[
            "role",
            "assignment",
            "create",
            "--assignee",
            &principal,
            "--role",
            "Reader",
            "--scope",
            &group,
        ])
        .json();
    let id = assigned["id"].as_str().unwrap().to_string();

    let mine = owner
        .run(&["role", "assignment", "list", "--assignee", &principal])
        .json();
    let ids: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let at_group = owner
        .run(&["role", "assignment", "list", "--scope", &group])
        .json();
    assert!(at_group
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == id.as_str()));

    owner
        .run(&["role", "assignment", "delete", "--ids", &id])
        .ok();
    let (status, _) = server.call("GET", &format!("{id}?api-version=2022-04-01"), None);
    assert_eq!(status, 404, "the assignment is gone on the server");
    let mine = owner
        .run(&["role", "assignment", "list", "--assignee", &principal])
        .json();
    assert_eq!(mine, Value::Array(Vec::new()));
}

#[test]
fn role_assignment_create_with_an_unknown_role_is_a_usage_error() {
    let (server, owner) = Rekeyd::with_account();
    let (principal, _) = create_token(&owner, "x");
    let run = owner.run(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        &principal,
        "--role",
        "Janitor",
        "--scope",
        &format!("/subscriptions/{}", server.subscription),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("Role 'Janitor' doesn't exist"),
        "{run:?}"
    );
}

#[test]
fn activity_log_list_contains_the_key_regeneration() {
    let (_server, cli) = Rekeyd::with_account();
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
        "key1",
        "--yes",
    ])
    .json();
    let regenerations = |log: &Value| {
        log.as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["operationName"]["value"]
                    == "Microsoft.CognitiveServices/accounts/regenerateKey/action"
                    && e["status"]["value"] == "Succeeded"
            })
            .count()
    };
    let recent = cli.run(&["monitor", "activity-log", "list", "--offset", "1h"]);
    assert_eq!(regenerations(&recent.json()), 1, "{recent:?}");
    let by_default = cli.run(&["monitor", "activity-log", "list"]).json();
    assert_eq!(regenerations(&by_default), 1);
    let since = cli
        .run(&[
            "monitor",
            "activity-log",
            "list",
            "--start-time",
            "2000-01-01T00:00:00Z",
        ])
        .json();
    assert_eq!(regenerations(&since), 1);
    let future = cli
        .run(&[
            "monitor",
            "activity-log",
            "list",
            "--start-time",
            "2999-01-01T00:00:00Z",
        ])
        .json();
    assert_eq!(future, Value::Array(Vec::new()));
}

/// Runs one statement of SQL on rekeyd's SQLite database with the sqlite3 CLI; stdout trimmed.
fn sqlite(server: &Rekeyd, sql: &str) -> String {
    let db = server.dir.path().join("data/rekey.db");
    let out = Command::new("sqlite3")
        .arg("-cmd")
        // rekeyd may hold the database for a moment; wait instead of failing with SQLITE_BUSY.
        .arg(".timeout 5000")
        .arg(&db)
        .arg(sql)
        .output()
        .expect("the sqlite3 CLI is installed (apt-get install sqlite3)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn audit_verify_exits_zero_when_intact_and_names_an_edited_record() {
    let (server, cli) = Rekeyd::with_account();
    cli.run(&[
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
    let intact = cli.run(&["audit", "verify"]).json();
    assert_eq!(intact["intact"], true, "{intact}");
    assert!(intact["records"].as_u64().unwrap() >= 3, "{intact}");

    let seq = sqlite(
        &server,
        "SELECT seq FROM audit_log WHERE action LIKE '%listKeys%' ORDER BY seq DESC LIMIT 1",
    );
    sqlite(
        &server,
        &format!("UPDATE audit_log SET result = 'Denied' WHERE seq = {seq}"),
    );

    let broken = cli.run(&["audit", "verify"]);
    assert_eq!(broken.code, 1, "{broken:?}");
    let answer: Value = serde_json::from_str(&broken.stdout).unwrap();
    assert_eq!(answer["intact"], false, "{answer}");
    assert_eq!(answer["firstBrokenSeq"].to_string(), seq);
    assert!(
        broken
            .stderr
            .contains(&format!("the first broken record is {seq}")),
        "{broken:?}"
    );
}
