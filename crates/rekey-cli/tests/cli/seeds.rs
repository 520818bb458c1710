//! The seeds' own scripts, with `az` replaced by `rekey`, run unchanged under `bash -e`.

use std::path::Path;

use serde_json::Value;

use crate::helpers::{Cli, Rekeyd, COSMOS};

fn seed(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/seeds")
        .join(name)
}

#[test]
fn cognitive_services_seed_lists_and_regenerates_both_keys() {
    let server = Rekeyd::start();
    server.create_group("cog-services-staging");
    server.create_account("cog-services-staging", "myMultiCogService");
    let before = server
        .account_keys("cog-services-staging", "myMultiCogService")
        .unwrap();
    let cli = Cli::logged_in(&server);

    let run = cli.script(
        &seed("cognitive-services-keys.sh"),
        &[("SUBSCRIPTION_NAME", "rekey default subscription")],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let after = server
        .account_keys("cog-services-staging", "myMultiCogService")
        .unwrap();
    assert_ne!(after["key1"], before["key1"]);
    assert_ne!(after["key2"], before["key2"]);

    // The outputs, in order: account show, keys list, regenerate key1, regenerate key2, keys list.
    let outputs: Vec<Value> = serde_json::Deserializer::from_str(&run.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(outputs.len(), 5, "{}", run.stdout);
    assert_eq!(outputs[0]["id"], server.subscription.as_str());
    assert_eq!(outputs[1], before);
    assert_eq!(outputs[2]["key2"], before["key2"]);
    assert_eq!(outputs[3], after);
    assert_eq!(outputs[4], after);
}

#[test]
fn cosmosdb_seed_creates_lists_and_regenerates_the_secondary_key() {
    let server = Rekeyd::start();
    let cli = Cli::logged_in(&server);
    let run = cli.script(&seed("cosmosdb-regenerate-key.sh"), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let outputs: Vec<Value> = serde_json::Deserializer::from_str(&run.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap();
    // group create, cosmosdb create, list-keys; regenerate-key prints nothing.
    assert_eq!(outputs.len(), 3, "{}", run.stdout);
    assert_eq!(outputs[1]["name"], "docdb-test");
    let listed = &outputs[2];
    let after = server.action(COSMOS, "myResourceGroup", "docdb-test", "listKeys");
    assert_ne!(after["secondaryMasterKey"], listed["secondaryMasterKey"]);
    for unchanged in [
        "primaryMasterKey",
        "primaryReadonlyMasterKey",
        "secondaryReadonlyMasterKey",
    ] {
        assert_eq!(after[unchanged], listed[unchanged], "{unchanged}");
    }
    assert!(
        run.stderr
            .contains("WARNING: This command has been deprecated"),
        "{run:?}"
    );
}
