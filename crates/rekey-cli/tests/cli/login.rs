//! `rekey login`, `logout`, `account list|show|set`, the REKEY_ENDPOINT/REKEY_TOKEN overrides, and
//! what happens without a profile or without a reachable endpoint.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::helpers::{Cli, Rekeyd, RG_VERSION};

#[test]
fn login_stores_a_profile_only_its_owner_can_read_and_prints_the_subscriptions() {
    let server = Rekeyd::start();
    let cli = Cli::new();
    let bootstrap = server.bootstrap_file();
    let run = cli.run(&[
        "login",
        "--endpoint",
        &server.base,
        "--token-file",
        bootstrap.to_str().unwrap(),
    ]);
    let accounts = run.json();
    assert_eq!(accounts[0]["id"], server.subscription.as_str());
    assert_eq!(accounts[0]["isDefault"], true);
    assert_eq!(accounts[0]["state"], "Enabled");

    let file = cli.profile_dir().join("profile.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "profile mode {mode:o}");
    let dir_mode = std::fs::metadata(cli.profile_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "profile directory mode {dir_mode:o}");
    let profile: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(profile["endpoint"], server.base.as_str());
    assert_eq!(profile["token"], server.token.as_str());
    assert_eq!(profile["subscriptionId"], server.subscription.as_str());

    // The stored profile is what later commands use.
    cli.run(&["group", "create", "-n", "from-profile", "-l", "westus"])
        .json();
    assert!(server.group_exists("from-profile"));
}

#[test]
fn login_with_a_wrong_token_exits_1_and_stores_nothing() {
    let server = Rekeyd::start();
    let cli = Cli::new();
    let run = cli.run(&["login", "--endpoint", &server.base, "--token", "rkt_wrong"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("(InvalidAuthenticationToken)"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("\nCode: InvalidAuthenticationToken\nMessage: "),
        "{run:?}"
    );
    assert!(!cli.profile_dir().join("profile.json").exists());
}

#[test]
fn login_without_any_token_is_a_usage_error() {
    let cli = Cli::new();
    let run = cli.run(&["login", "--endpoint", "http://127.0.0.1:1"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--token"), "{run:?}");
}

#[test]
fn environment_endpoint_and_token_override_the_profile() {
    let server = Rekeyd::start();
    // No profile at all: the variables alone are enough.
    let bare = Cli::new()
        .with_env("REKEY_ENDPOINT", &server.base)
        .with_env("REKEY_TOKEN", &server.token);
    bare.run(&["group", "create", "-n", "from-env", "-l", "westus"])
        .json();
    assert!(server.group_exists("from-env"));

    // With a profile, REKEY_ENDPOINT wins over it.
    let cli = Cli::logged_in(&server).with_env("REKEY_ENDPOINT", "http://127.0.0.1:1");
    let run = cli.run(&["group", "list"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("http://127.0.0.1:1"), "{run:?}");

    // And REKEY_TOKEN wins over the stored token.
    let cli = Cli::logged_in(&server).with_env("REKEY_TOKEN", "rkt_other");
    let run = cli.run(&["group", "list"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("InvalidAuthenticationToken"), "{run:?}");
}

#[test]
fn an_unreachable_endpoint_is_named_and_rekey_login_suggested() {
    let cli = Cli::new()
        .with_env("REKEY_ENDPOINT", "http://127.0.0.1:1")
        .with_env("REKEY_TOKEN", "rkt_x");
    let run = cli.run(&[
        "cognitiveservices",
        "account",
        "keys",
        "list",
        "-n",
        "a",
        "-g",
        "rg",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with("ERROR: Cannot reach rekey at http://127.0.0.1:1"),
        "{run:?}"
    );
    assert!(run.stderr.contains("rekey login"), "{run:?}");
    assert!(run.stdout.is_empty());
}

#[test]
fn commands_without_a_profile_ask_to_run_rekey_login() {
    let run = Cli::new().run(&["group", "list"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("rekey login"), "{run:?}");
}

#[test]
fn logout_forgets_the_profile() {
    let server = Rekeyd::start();
    let cli = Cli::logged_in(&server);
    assert_eq!(cli.run(&["logout"]).code, 0);
    assert!(!cli.profile_dir().join("profile.json").exists());
    assert_eq!(cli.run(&["group", "list"]).code, 1);
}

#[test]
fn account_set_chooses_the_subscription_later_commands_act_in() {
    let server = Rekeyd::start();
    let second = "00000000-0000-4000-8000-000000000002";
    let (status, body) = server.call(
        "PUT",
        &format!("/subscriptions/{second}?api-version=2022-12-01"),
        Some(r#"{"displayName":"Second"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let cli = Cli::logged_in(&server);

    let list = cli.run(&["account", "list"]).json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let default: Vec<&Value> = list.iter().filter(|a| a["isDefault"] == true).collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["id"], server.subscription.as_str());

    // By display name, as in the seed's `az account set --subscription <subscriptionName>`.
    assert_eq!(
        cli.run(&["account", "set", "--subscription", "Second"])
            .ok(),
        ""
    );
    let shown = cli.run(&["account", "show"]).json();
    assert_eq!(shown["id"], second);
    assert_eq!(shown["name"], "Second");
    assert_eq!(shown["isDefault"], true);

    cli.run(&["group", "create", "-n", "in-second", "-l", "westus"])
        .json();
    let (status, _) = server.call(
        "GET",
        &format!("/subscriptions/{second}/resourcegroups/in-second?api-version={RG_VERSION}"),
        None,
    );
    assert_eq!(status, 200);
    assert!(!server.group_exists("in-second"));

    // -s with an id, and the global --subscription for one command only.
    assert_eq!(
        cli.run(&["account", "set", "-s", &server.subscription])
            .code,
        0
    );
    assert_eq!(
        cli.run(&["account", "show"]).json()["id"],
        server.subscription.as_str()
    );
    let other = cli.run(&["group", "show", "-n", "in-second", "--subscription", second]);
    assert_eq!(other.json()["name"], "in-second");

    let unknown = cli.run(&["account", "set", "-s", "Nope"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("Nope"));
}

/// Runs openssl in `dir`, failing the test with its output when it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/test needs it too)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_https_endpoint_signed_by_a_private_ca_works_once_the_ca_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=rekey test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    let (cert, key, ca) = (d.join("server.pem"), d.join("server.key"), d.join("ca.pem"));
    let server = Rekeyd::start_with(
        dir,
        &[
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);

    let cli = Cli::new();
    let refused = cli.run(&[
        "login",
        "--endpoint",
        &server.base,
        "--token",
        &server.token,
    ]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("--ca-file"), "{refused:?}");

    cli.run(&[
        "login",
        "--endpoint",
        &server.base,
        "--token",
        &server.token,
        "--ca-file",
        ca.to_str().unwrap(),
    ])
    .json();
    cli.run(&["group", "create", "-n", "over-tls", "-l", "westus"])
        .json();
    // Without the profile, REKEY_CA_BUNDLE does the same.
    let bare = Cli::new()
        .with_env("REKEY_ENDPOINT", &server.base)
        .with_env("REKEY_TOKEN", &server.token)
        .with_env("REKEY_CA_BUNDLE", ca.to_str().unwrap());
    assert_eq!(
        bare.run(&["group", "exists", "-n", "over-tls"]).ok(),
        "true\n"
    );
}
