//! The confirmation prompt, driven through a pseudo-terminal as a person at a terminal would meet it.

use rexpect::process::WaitStatus;
use rexpect::session::spawn_command;

use crate::helpers::{Cli, Rekeyd};

const TIMEOUT_MS: Option<u64> = Some(30_000);

/// Runs `rekey args…` on a terminal, answers the prompt with `answer`, and returns everything the
/// terminal showed after the answer, with the exit code.
fn answer_prompt(cli: &Cli, args: &[&str], answer: &str) -> (String, i32) {
    let mut cmd = cli.command();
    cmd.args(args);
    let mut session = spawn_command(cmd, TIMEOUT_MS).expect("spawning rekey on a pty");
    session.exp_string("(y/n): ").expect("the prompt appears");
    session.send_line(answer).unwrap();
    let rest = session.exp_eof().expect("rekey finishes");
    let code = match session.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("rekey did not exit normally: {other:?}"),
    };
    (rest, code)
}

#[test]
fn answering_no_changes_nothing_and_yes_regenerates() {
    let (server, cli) = Rekeyd::with_account();
    let before = server.account_keys("rg", "acct").unwrap();
    let args = [
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
    ];

    let (shown, code) = answer_prompt(&cli, &args, "n");
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("Operation cancelled."), "{shown}");
    assert_eq!(server.account_keys("rg", "acct").unwrap(), before);

    let (shown, code) = answer_prompt(&cli, &args, "y");
    assert_eq!(code, 0, "{shown}");
    let after = server.account_keys("rg", "acct").unwrap();
    assert_ne!(after["key1"], before["key1"]);
    assert_eq!(after["key2"], before["key2"]);
    assert!(shown.contains(after["key1"].as_str().unwrap()), "{shown}");
}

#[test]
fn the_prompt_names_the_key_and_the_account() {
    let (_server, cli) = Rekeyd::with_account();
    let mut cmd = cli.command();
    cmd.args([
        "cognitiveservices",
        "account",
        "keys",
        "regenerate",
        "-n",
        "acct",
        "-g",
        "rg",
        "--key-name",
        "key2",
    ]);
    let mut session = spawn_command(cmd, TIMEOUT_MS).unwrap();
    let question = session.exp_string("(y/n): ").unwrap();
    assert!(
        question.contains(
            "Regenerate key2 of Cognitive Services account 'acct' in resource group 'rg'?"
        ),
        "{question}"
    );
    session.send_line("no").unwrap();
    session.exp_eof().unwrap();
}

#[test]
fn yes_skips_the_prompt_on_a_terminal() {
    let (server, cli) = Rekeyd::with_account();
    let before = server.account_keys("rg", "acct").unwrap();
    let mut cmd = cli.command();
    cmd.args([
        "cognitiveservices",
        "account",
        "keys",
        "regenerate",
        "-n",
        "acct",
        "-g",
        "rg",
        "--key-name",
        "key2",
        "-y",
    ]);
    let mut session = spawn_command(cmd, TIMEOUT_MS).unwrap();
    let shown = session.exp_eof().unwrap();
    assert!(!shown.contains("(y/n)"), "{shown}");
    assert_ne!(
        server.account_keys("rg", "acct").unwrap()["key2"],
        before["key2"]
    );
}

#[test]
fn group_delete_asks_on_a_terminal_as_az_does() {
    let server = Rekeyd::start();
    server.create_group("rg");
    let cli = Cli::logged_in(&server);
    let (_, code) = answer_prompt(&cli, &["group", "delete", "-n", "rg"], "n");
    assert_eq!(code, 1);
    assert!(server.group_exists("rg"));
    let (_, code) = answer_prompt(&cli, &["group", "delete", "-n", "rg"], "y");
    assert_eq!(code, 0);
    assert!(!server.group_exists("rg"));
}
