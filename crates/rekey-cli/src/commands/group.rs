//! Owns `rekey group create|show|list|exists|delete`, az's resource group commands against
//! `/subscriptions/{sub}/resourcegroups/{name}`.

use rekey_api::arm::ResourceGroupCreate;
use reqwest::Method;
use serde_json::Value;

use super::{delete_at, for_each, list_value, tags};
use crate::cli::{GroupCommand, GroupName};
use crate::context::{Context, OffTerminal};
use crate::error::CliError;
use crate::target::{group_path, parse_group_id, GROUPS_API_VERSION};

/// (subscription, group) for each group the command names.
fn groups(ctx: &Context, args: &GroupName) -> Result<Vec<(String, String)>, CliError> {
    if !args.ids.is_empty() {
        return args.ids.iter().map(|id| parse_group_id(id)).collect();
    }
    let name = args.name.clone().ok_or_else(|| {
        CliError::Usage("the following arguments are required: --name/-n (or --ids)".into())
    })?;
    Ok(vec![(ctx.subscription()?.to_string(), name)])
}

pub fn run(ctx: &Context, command: GroupCommand) -> Result<(), CliError> {
    let client = || ctx.client();
    match command {
        GroupCommand::Create {
            name,
            location,
            tags: raw_tags,
        } => {
            let body = ResourceGroupCreate {
                location,
                tags: tags(&raw_tags),
                managed_by: None,
            };
            let body = serde_json::to_value(body).expect("a group body serializes");
            let reply = client()?.call(
                Method::PUT,
                &group_path(ctx.subscription()?, &name),
                GROUPS_API_VERSION,
                Some(&body),
            )?;
            ctx.print(&reply.body.unwrap_or(Value::Null))
        }
        GroupCommand::Show(args) => for_each(ctx, &groups(ctx, &args)?, |(sub, group)| {
            let path = group_path(sub, group);
            Ok(client()?
                .call(Method::GET, &path, GROUPS_API_VERSION, None)?
                .body)
        }),
        GroupCommand::List => {
            let path = format!("/subscriptions/{}/resourcegroups", ctx.subscription()?);
            let reply = client()?.call(Method::GET, &path, GROUPS_API_VERSION, None)?;
            ctx.print(&list_value(reply))
        }
        GroupCommand::Exists(args) => for_each(ctx, &groups(ctx, &args)?, |(sub, group)| {
            let path = group_path(sub, group);
            let reply = client()?.send(Method::HEAD, &path, GROUPS_API_VERSION, None)?;
            match reply.status {
                200..=299 => Ok(Some(Value::Bool(true))),
                404 => Ok(Some(Value::Bool(false))),
                status => Err(CliError::from_reply(
                    status,
                    "Error",
                    &reply.body.map(|b| b.to_string()).unwrap_or_default(),
                )),
            }
        }),
        GroupCommand::Delete {
            group,
            yes,
            no_wait,
        } => {
            let targets = groups(ctx, &group)?;
            ctx.confirm(
                "Are you sure you want to perform this operation?",
                yes,
                OffTerminal::Refuse,
            )?;
            for_each(ctx, &targets, |(sub, group)| {
                delete_at(ctx, &group_path(sub, group), GROUPS_API_VERSION, no_wait)
            })
        }
    }
}
