//! Owns `rekey cosmosdb …` (alias `documentdb`): create/show/list/delete, `keys list --type
//! keys|read-only-keys|connection-strings` and `keys regenerate --key-kind …`, a long-running
//! operation. Also az's older `cosmosdb list-keys` and `regenerate-key`, which the seeds' script uses,
//! and rekey's `keys usage` and `keys disable|enable --key-kind`.

use rekey_api::cosmos_db::{
    ConsistencyPolicy, DatabaseAccountCreate, DatabaseAccountCreateProperties,
    DatabaseAccountLocation, DatabaseAccountRegenerateKeyParameters,
};
use serde_json::Value;

use super::{
    create, delete, for_each, group_location, list, list_keys, regenerate, resources, show,
    switch_key, tags, usage,
};
use crate::cli::{
    CosmosCommand, CosmosCreate, CosmosKeyControl, CosmosKeyKind, CosmosKeyType, CosmosKeysCommand,
    CosmosRegenerate, ResourceArgs,
};
use crate::context::{Context, OffTerminal};
use crate::error::CliError;
use crate::target::{ResourceRef, COSMOS_DB as TYPE};

pub fn run(ctx: &Context, command: CosmosCommand) -> Result<(), CliError> {
    match command {
        CosmosCommand::Create(args) => create_account(ctx, args),
        CosmosCommand::Show(args) => {
            for_each(ctx, &resources(ctx, &TYPE, &args)?, |r| show(ctx, &TYPE, r))
        }
        CosmosCommand::List(args) => list(ctx, &TYPE, args.resource_group.as_deref()),
        CosmosCommand::Delete {
            target,
            yes,
            no_wait,
        } => {
            let targets = resources(ctx, &TYPE, &target)?;
            ctx.confirm(
                "Are you sure you want to perform this operation?",
                yes,
                OffTerminal::Refuse,
            )?;
            for_each(ctx, &targets, |r| delete(ctx, &TYPE, r, no_wait))
        }
        CosmosCommand::Keys(CosmosKeysCommand::List { target, key_type }) => {
            list_account_keys(ctx, &target, key_type)
        }
        CosmosCommand::Keys(CosmosKeysCommand::Regenerate(args)) => regenerate_key(ctx, args),
        CosmosCommand::Keys(CosmosKeysCommand::Usage(args)) => {
            usage(ctx, &TYPE, &resources(ctx, &TYPE, &args)?)
        }
        CosmosCommand::Keys(CosmosKeysCommand::Disable(args)) => switch(ctx, args, false),
        CosmosCommand::Keys(CosmosKeysCommand::Enable(args)) => switch(ctx, args, true),
        CosmosCommand::ListKeys(target) => {
            ctx.warn(
                "This command has been deprecated and will be removed in a future release. \
                 Use 'cosmosdb keys list' instead.",
            );
            list_account_keys(ctx, &target, CosmosKeyType::Keys)
        }
        CosmosCommand::RegenerateKey(args) => {
            ctx.warn(
                "This command has been deprecated and will be removed in a future release. \
                 Use 'cosmosdb keys regenerate' instead.",
            );
            regenerate_key(ctx, args)
        }
    }
}

fn list_account_keys(
    ctx: &Context,
    target: &ResourceArgs,
    key_type: CosmosKeyType,
) -> Result<(), CliError> {
    let action_name = match key_type {
        CosmosKeyType::Keys => "listKeys",
        CosmosKeyType::ReadOnlyKeys => "readonlykeys",
        CosmosKeyType::ConnectionStrings => "listConnectionStrings",
    };
    for_each(ctx, &resources(ctx, &TYPE, target)?, |r| {
        list_keys(ctx, &TYPE, r, action_name, |slot| {
            format!(
                "rekey cosmosdb keys regenerate --key-kind {slot} -n {} -g {}",
                r.name, r.group
            )
        })
    })
}

/// The key as prompts name it, and the `regenerateKey` body naming it (which `disableKey` and
/// `enableKey` take too).
fn key_body(kind: CosmosKeyKind) -> (String, Value) {
    let kind = match kind {
        CosmosKeyKind::Primary => "primary",
        CosmosKeyKind::Secondary => "secondary",
        CosmosKeyKind::PrimaryReadonly => "primaryReadonly",
        CosmosKeyKind::SecondaryReadonly => "secondaryReadonly",
    };
    let body = serde_json::to_value(DatabaseAccountRegenerateKeyParameters {
        key_kind: kind.into(),
    })
    .expect("a regenerate body serializes");
    (format!("the {kind} key"), body)
}

fn switch(ctx: &Context, args: CosmosKeyControl, enable: bool) -> Result<(), CliError> {
    let (what, body) = key_body(args.key_kind);
    for_each(ctx, &resources(ctx, &TYPE, &args.target)?, |r| {
        switch_key(ctx, &TYPE, r, &what, &body, enable, &args.safety)
    })
}

fn regenerate_key(ctx: &Context, args: CosmosRegenerate) -> Result<(), CliError> {
    let (what, body) = key_body(args.key_kind);
    for_each(ctx, &resources(ctx, &TYPE, &args.target)?, |r| {
        if let Some(reply) = regenerate(ctx, &TYPE, r, &what, &body, &args.safety, &args.rotation)?
        {
            if !args.no_wait {
                ctx.client()?.wait(&reply, ctx.spinner())?;
            }
        }
        Ok(None)
    })
}

/// One entry of `properties.locations`.
fn location(name: &str, priority: i32, zone_redundant: bool) -> DatabaseAccountLocation {
    DatabaseAccountLocation {
        location_name: name.into(),
        failover_priority: Some(priority),
        is_zone_redundant: Some(zone_redundant),
    }
}

/// `--locations` in az's two syntaxes: `regionName=R failoverPriority=N isZoneRedundant=B` (the
/// keys may repeat for more regions) and the older `"Region Name"=N`.
fn parse_locations(raw: &[String]) -> Result<Vec<DatabaseAccountLocation>, CliError> {
    let bad = |item: &str| {
        CliError::Usage(format!(
            "argument --locations: '{item}' is neither regionName=R, failoverPriority=N, \
             isZoneRedundant=B nor \"Region Name\"=N"
        ))
    };
    // A failover priority is ARM's 32-bit integer, 0 or more.
    let priority = |item: &str, value: &str| {
        value
            .parse::<u32>()
            .ok()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| bad(item))
    };
    let mut out: Vec<(String, i32, bool)> = Vec::new();
    for item in raw {
        let (key, value) = item.split_once('=').ok_or_else(|| bad(item))?;
        match key {
            "regionName" => out.push((value.to_string(), out.len() as i32, false)),
            "failoverPriority" => {
                let last = out.last_mut().ok_or_else(|| bad(item))?;
                last.1 = priority(item, value)?;
            }
            "isZoneRedundant" => {
                let last = out.last_mut().ok_or_else(|| bad(item))?;
                last.2 = value.eq_ignore_ascii_case("true");
            }
            region => out.push((region.to_string(), priority(item, value)?, false)),
        }
    }
    Ok(out
        .iter()
        .map(|(name, priority, zones)| location(name, *priority, *zones))
        .collect())
}

fn create_account(ctx: &Context, args: CosmosCreate) -> Result<(), CliError> {
    let mut locations = parse_locations(&args.locations)?;
    let r = ResourceRef {
        subscription: ctx.subscription()?.to_string(),
        group: args.resource_group,
        name: args.name,
    };
    // As in az, the account lives in its group's location; --locations only lists its regions.
    let group_location = group_location(ctx, &r.subscription, &r.group)?;
    if locations.is_empty() {
        locations.push(location(&group_location, 0, false));
    }
    let consistency = (args.default_consistency_level.is_some()
        || args.max_interval.is_some()
        || args.max_staleness_prefix.is_some())
    .then(|| ConsistencyPolicy {
        default_consistency_level: args
            .default_consistency_level
            .unwrap_or_else(|| "Session".into()),
        max_interval_in_seconds: args.max_interval,
        max_staleness_prefix: args.max_staleness_prefix,
    });
    let body = DatabaseAccountCreate {
        location: group_location,
        kind: Some(args.kind),
        tags: Some(tags(&args.tags).unwrap_or_default()),
        properties: DatabaseAccountCreateProperties {
            database_account_offer_type: "Standard".into(),
            locations,
            disable_local_auth: None,
            consistency_policy: consistency,
            upstream: None,
        },
        identity: None,
    };
    let body = serde_json::to_value(body).expect("an account body serializes");
    let account = create(ctx, &TYPE, &r, &body, args.no_wait)?;
    ctx.print(&account.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn locations_accept_the_seed_syntax_and_the_current_one() {
        let old = parse_locations(&strings(&["China East=0", "China North=1"])).unwrap();
        assert_eq!(
            old,
            vec![
                location("China East", 0, false),
                location("China North", 1, false)
            ]
        );
        let new = parse_locations(&strings(&[
            "regionName=westus",
            "failoverPriority=0",
            "isZoneRedundant=True",
            "regionName=eastus",
            "failoverPriority=1",
        ]))
        .unwrap();
        assert_eq!(
            new,
            vec![location("westus", 0, true), location("eastus", 1, false)]
        );
        assert_eq!(
            parse_locations(&strings(&["failoverPriority=0"]))
                .unwrap_err()
                .exit_code(),
            2
        );
        assert!(parse_locations(&strings(&["westus"])).is_err());
    }
}
