//! Owns `rekey cognitiveservices account …`: create/show/list/delete and `keys list|regenerate
//! --key-name key1|key2`, with the bodies of rekey-api's Cognitive Services wire types, and rekey's
//! `keys usage` and `keys disable|enable --key-name`.

use rekey_api::cognitive_services::{AccountUpdate, RegenerateKeyParameters, Sku};
use serde_json::Value;

use super::{
    create, delete, for_each, group_location, list, list_keys, regenerate, resources, show,
    switch_key, tags, usage,
};
use crate::cli::{
    CognitiveAccountCommand, CognitiveKeyName, CognitiveKeysCommand, CognitiveServicesCommand,
};
use crate::context::Context;
use crate::error::CliError;
use crate::target::{ResourceRef, COGNITIVE_SERVICES as TYPE};

pub fn run(ctx: &Context, command: CognitiveServicesCommand) -> Result<(), CliError> {
    let CognitiveServicesCommand::Account(command) = command;
    match command {
        CognitiveAccountCommand::Create {
            name,
            resource_group,
            kind,
            sku,
            location,
            tags: raw_tags,
            yes: _,
        } => {
            let r = ResourceRef {
                subscription: ctx.subscription()?.to_string(),
                group: resource_group,
                name,
            };
            let location = match location {
                Some(l) => l,
                None => group_location(ctx, &r.subscription, &r.group)?,
            };
            let body = AccountUpdate {
                location: Some(location),
                kind: Some(kind),
                sku: Some(Sku {
                    name: sku,
                    tier: None,
                }),
                tags: tags(&raw_tags),
                properties: Some(Default::default()),
                identity: None,
            };
            let body = serde_json::to_value(body).expect("an account body serializes");
            let account = create(ctx, &TYPE, &r, &body, false)?;
            ctx.print(&account.unwrap_or(Value::Null))
        }
        CognitiveAccountCommand::Show(args) => {
            for_each(ctx, &resources(ctx, &TYPE, &args)?, |r| show(ctx, &TYPE, r))
        }
        CognitiveAccountCommand::List(args) => list(ctx, &TYPE, args.resource_group.as_deref()),
        CognitiveAccountCommand::Delete(args) => {
            for_each(ctx, &resources(ctx, &TYPE, &args)?, |r| {
                delete(ctx, &TYPE, r, false)
            })
        }
        CognitiveAccountCommand::Keys(CognitiveKeysCommand::List(args)) => {
            for_each(ctx, &resources(ctx, &TYPE, &args)?, |r| {
                list_keys(ctx, &TYPE, r, "listKeys", |slot| {
                    format!(
                        "rekey cognitiveservices account keys regenerate --key-name {slot} -n {} -g {}",
                        r.name, r.group
                    )
                })
            })
        }
        CognitiveAccountCommand::Keys(CognitiveKeysCommand::Regenerate {
            target,
            key_name,
            safety,
            rotation,
        }) => {
            let (slot, body) = key_body(key_name);
            for_each(ctx, &resources(ctx, &TYPE, &target)?, |r| {
                Ok(regenerate(ctx, &TYPE, r, slot, &body, &safety, &rotation)?
                    .and_then(|reply| reply.body))
            })
        }
        CognitiveAccountCommand::Keys(CognitiveKeysCommand::Usage(args)) => {
            usage(ctx, &TYPE, &resources(ctx, &TYPE, &args)?)
        }
        CognitiveAccountCommand::Keys(CognitiveKeysCommand::Disable {
            target,
            key_name,
            safety,
        }) => {
            let (slot, body) = key_body(key_name);
            for_each(ctx, &resources(ctx, &TYPE, &target)?, |r| {
                switch_key(ctx, &TYPE, r, slot, &body, false, &safety)
            })
        }
        CognitiveAccountCommand::Keys(CognitiveKeysCommand::Enable {
            target,
            key_name,
            safety,
        }) => {
            let (slot, body) = key_body(key_name);
            for_each(ctx, &resources(ctx, &TYPE, &target)?, |r| {
                switch_key(ctx, &TYPE, r, slot, &body, true, &safety)
            })
        }
    }
}

/// The slot as az names it, and the `regenerateKey` body naming it (which `disableKey` and
/// `enableKey` take too).
fn key_body(key_name: CognitiveKeyName) -> (&'static str, Value) {
    let (slot, wire) = match key_name {
        CognitiveKeyName::Key1 => ("key1", "Key1"),
        CognitiveKeyName::Key2 => ("key2", "Key2"),
    };
    let body = serde_json::to_value(RegenerateKeyParameters {
        key_name: wire.into(),
    })
    .expect("a regenerate body serializes");
    (slot, body)
}
