//! Owns `rekey quantum workspace …`: create/show/list/delete, `keys list`, and `keys regenerate
//! --key-type Primary,Secondary` with PowerShell's `--pass-thru` (prints `true` on success, as
//! `New-AzQuantumApiWorkspaceKey -PassThru` does), and rekey's `keys usage` and `keys disable|enable
//! --key-type`.

use rekey_api::quantum::{ApiKeys, ProviderSku, WorkspaceCreate, WorkspaceProperties};
use serde_json::Value;

use super::{
    create, delete, for_each, group_location, list, list_keys, regenerate, resources, show,
    switch_key, usage,
};
use crate::cli::{QuantumCommand, QuantumKeyType, QuantumKeysCommand, QuantumWorkspaceCommand};
use crate::context::Context;
use crate::error::CliError;
use crate::target::{ResourceRef, QUANTUM as TYPE};

pub fn run(ctx: &Context, command: QuantumCommand) -> Result<(), CliError> {
    let QuantumCommand::Workspace(command) = command;
    match command {
        QuantumWorkspaceCommand::Create {
            name,
            resource_group,
            location,
            storage_account,
            provider_sku_list,
            enable_api_key,
            no_wait,
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
            let providers = provider_list(provider_sku_list.as_deref())?;
            let body = WorkspaceCreate {
                location,
                tags: None,
                properties: Some(WorkspaceProperties {
                    api_key_enabled: enable_api_key,
                    providers: Some(providers),
                    storage_account,
                    upstream: None,
                }),
                identity: None,
            };
            let body = serde_json::to_value(body).expect("a workspace body serializes");
            let workspace = create(ctx, &TYPE, &r, &body, no_wait)?;
            ctx.print(&workspace.unwrap_or(Value::Null))
        }
        QuantumWorkspaceCommand::Show(args) => {
            for_each(ctx, &resources(ctx, &TYPE, &args.into())?, |r| {
                show(ctx, &TYPE, r)
            })
        }
        QuantumWorkspaceCommand::List(args) => list(ctx, &TYPE, args.resource_group.as_deref()),
        QuantumWorkspaceCommand::Delete { target, no_wait } => {
            for_each(ctx, &resources(ctx, &TYPE, &target.into())?, |r| {
                delete(ctx, &TYPE, r, no_wait)
            })
        }
        QuantumWorkspaceCommand::Keys(QuantumKeysCommand::List(args)) => {
            for_each(ctx, &resources(ctx, &TYPE, &args.into())?, |r| {
                list_keys(ctx, &TYPE, r, "listKeys", |slot| {
                    // The catalogue's `primary` is the CLI's `--key-type Primary`.
                    let key_type = match slot {
                        "primary" => "Primary",
                        "secondary" => "Secondary",
                        other => other,
                    };
                    format!(
                        "rekey quantum workspace keys regenerate --key-type {key_type} -w {} -g {}",
                        r.name, r.group
                    )
                })
            })
        }
        QuantumWorkspaceCommand::Keys(QuantumKeysCommand::Regenerate {
            target,
            key_type,
            safety,
            rotation,
            pass_thru,
        }) => {
            let (what, body) = keys_body(&key_type);
            for_each(ctx, &resources(ctx, &TYPE, &target.into())?, |r| {
                let done = regenerate(ctx, &TYPE, r, &what, &body, &safety, &rotation)?;
                Ok((done.is_some() && pass_thru).then_some(Value::Bool(true)))
            })
        }
        QuantumWorkspaceCommand::Keys(QuantumKeysCommand::Usage(args)) => {
            usage(ctx, &TYPE, &resources(ctx, &TYPE, &args.into())?)
        }
        QuantumWorkspaceCommand::Keys(QuantumKeysCommand::Disable {
            target,
            key_type,
            safety,
        }) => {
            let (what, body) = keys_body(&key_type);
            for_each(ctx, &resources(ctx, &TYPE, &target.into())?, |r| {
                switch_key(ctx, &TYPE, r, &what, &body, false, &safety)
            })
        }
        QuantumWorkspaceCommand::Keys(QuantumKeysCommand::Enable {
            target,
            key_type,
            safety,
        }) => {
            let (what, body) = keys_body(&key_type);
            for_each(ctx, &resources(ctx, &TYPE, &target.into())?, |r| {
                switch_key(ctx, &TYPE, r, &what, &body, true, &safety)
            })
        }
    }
}

/// The keys as prompts name them, and the `regenerateKey` body naming each once (which
/// `disableKey` and `enableKey` take too).
fn keys_body(key_type: &[QuantumKeyType]) -> (String, Value) {
    let mut keys: Vec<&str> = Vec::new();
    for k in key_type {
        let name = match k {
            QuantumKeyType::Primary => "Primary",
            QuantumKeyType::Secondary => "Secondary",
        };
        if !keys.contains(&name) {
            keys.push(name);
        }
    }
    let what = match keys.as_slice() {
        [one] => format!("the {} key", one.to_ascii_lowercase()),
        _ => "the primary and secondary keys".to_string(),
    };
    let body = serde_json::to_value(ApiKeys {
        keys: keys.iter().map(|k| k.to_string()).collect(),
    })
    .expect("a regenerate body serializes");
    (what, body)
}

/// `-r Microsoft/Basic,Quantinuum/Standard` as `[{"providerId","providerSku"}]`.
#[cfg(test)]
fn parse_providers(raw: Option<&str>) -> Result<Value, CliError> {
    provider_list(raw).map(Value::Array)
}

/// `-r Microsoft/Basic,Quantinuum/Standard` as the entries of `properties.providers`.
fn provider_list(raw: Option<&str>) -> Result<Vec<Value>, CliError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| match pair.split_once('/') {
            Some((id, sku)) if !id.is_empty() && !sku.is_empty() => {
                let provider = ProviderSku {
                    provider_id: id.into(),
                    provider_sku: sku.into(),
                };
                Ok(serde_json::to_value(provider).expect("a provider serializes"))
            }
            _ => Err(CliError::Usage(format!(
                "argument --provider-sku-list/-r: '{pair}' is not ProviderId/SKU"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn provider_sku_list_becomes_the_providers_array() {
        assert_eq!(
            parse_providers(Some("Microsoft/Basic, quantinuum/standard1")).unwrap(),
            json!([
                {"providerId": "Microsoft", "providerSku": "Basic"},
                {"providerId": "quantinuum", "providerSku": "standard1"}
            ])
        );
        assert_eq!(parse_providers(None).unwrap(), json!([]));
        assert_eq!(
            parse_providers(Some("Microsoft")).unwrap_err().exit_code(),
            2
        );
    }
}
