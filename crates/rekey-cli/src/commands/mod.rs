//! Owns dispatching a parsed command to its module, and the steps resource commands share: resolving
//! `-n`/`-g` or `--ids` to resources, running a command once per `--ids` entry (one result prints as
//! itself, several as a list, as az does), tags, the default location, the regenerate safety
//! switches (`--what-if`, confirmation), and rekey's rotation extensions every type shares: the
//! regeneration's `--if-unused-for` / `--grace` headers and its once-only resend, `keys usage`
//! (`listKeyUsage`, a table by default) and `keys disable|enable`.

mod access;
mod account;
mod cognitive_services;
mod cosmosdb;
mod group;
mod login;
mod quantum;

use std::collections::BTreeMap;

use clap::CommandFactory as _;
use reqwest::Method;
use serde_json::Value;

use crate::cli::{Cli, Command, ResourceArgs, RotationOptions, Safety, Shell};
use crate::client::{Reply, REPLAYED};
use crate::context::{write_out, Context, OffTerminal};
use crate::error::CliError;
use crate::target::{group_path, ResourceRef, ResourceType, GROUPS_API_VERSION};

pub fn run(ctx: &Context, command: Command) -> Result<(), CliError> {
    match command {
        Command::Login(args) => login::login(ctx, args),
        Command::Logout => login::logout(),
        Command::Account(cmd) => account::run(ctx, cmd),
        Command::Group(cmd) => group::run(ctx, cmd),
        Command::CognitiveServices(cmd) => cognitive_services::run(ctx, cmd),
        Command::Cosmosdb(cmd) => cosmosdb::run(ctx, cmd),
        Command::Quantum(cmd) => quantum::run(ctx, cmd),
        Command::Token(cmd) => access::token(ctx, cmd),
        Command::Role(cmd) => access::role(ctx, cmd),
        Command::Monitor(cmd) => access::monitor(ctx, cmd),
        Command::Audit(cmd) => access::audit(ctx, cmd),
        Command::Completion { shell } => {
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "rekey", &mut script);
            write_out(&String::from_utf8_lossy(&script))
        }
    }
}

/// The resources a command names: each `--ids` entry, or `-n` in `-g` in the current subscription.
pub fn resources(
    ctx: &Context,
    ty: &ResourceType,
    args: &ResourceArgs,
) -> Result<Vec<ResourceRef>, CliError> {
    if !args.ids.is_empty() {
        return args.ids.iter().map(|id| ty.parse_id(id)).collect();
    }
    let (Some(name), Some(group)) = (&args.name, &args.resource_group) else {
        return Err(CliError::Usage(
            "the following arguments are required: --name/-n, --resource-group/-g (or --ids)"
                .into(),
        ));
    };
    Ok(vec![ResourceRef {
        subscription: ctx.subscription()?.to_string(),
        group: group.clone(),
        name: name.clone(),
    }])
}

/// Runs `each` for every target and prints what they return: one result as itself, several as a
/// list; `None` results print nothing.
pub fn for_each<T>(
    ctx: &Context,
    targets: &[T],
    mut each: impl FnMut(&T) -> Result<Option<Value>, CliError>,
) -> Result<(), CliError> {
    let mut results = Vec::new();
    for target in targets {
        if let Some(value) = each(target)? {
            results.push(value);
        }
    }
    match (targets.len(), results.len()) {
        (_, 0) => Ok(()),
        (1, _) => ctx.print(&results[0]),
        _ => ctx.print(&Value::Array(results)),
    }
}

/// `--tags a=b c` as ARM's tag map (`c` gets an empty value, as in az).
pub fn tags(raw: &Option<Vec<String>>) -> Option<BTreeMap<String, String>> {
    raw.as_ref().map(|pairs| {
        pairs
            .iter()
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (pair.to_string(), String::new()),
            })
            .collect()
    })
}

/// The resource group's location, the default for a new resource as in az.
pub fn group_location(ctx: &Context, subscription: &str, group: &str) -> Result<String, CliError> {
    let reply = ctx.client()?.call(
        Method::GET,
        &group_path(subscription, group),
        GROUPS_API_VERSION,
        None,
    )?;
    reply
        .body
        .as_ref()
        .and_then(|b| b.get("location"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| CliError::Other(format!("Resource group '{group}' has no location.")))
}

/// GETs one resource.
pub fn show(ctx: &Context, ty: &ResourceType, r: &ResourceRef) -> Result<Option<Value>, CliError> {
    Ok(ctx
        .client()?
        .call(Method::GET, &ty.path(r), ty.api_version, None)?
        .body)
}

/// Sends a create (`PUT`) and, unless `no_wait`, waits for it and returns the resource as it ended.
pub fn create(
    ctx: &Context,
    ty: &ResourceType,
    r: &ResourceRef,
    body: &Value,
    no_wait: bool,
) -> Result<Option<Value>, CliError> {
    let client = ctx.client()?;
    let reply = client.call(Method::PUT, &ty.path(r), ty.api_version, Some(body))?;
    if no_wait {
        return Ok(None);
    }
    if client.wait(&reply, ctx.spinner())? {
        return show(ctx, ty, r);
    }
    match reply.body {
        Some(body) => Ok(Some(body)),
        None => show(ctx, ty, r),
    }
}

/// Deletes one resource and, unless `no_wait`, waits for a long-running deletion.
pub fn delete(
    ctx: &Context,
    ty: &ResourceType,
    r: &ResourceRef,
    no_wait: bool,
) -> Result<Option<Value>, CliError> {
    delete_at(ctx, &ty.path(r), ty.api_version, no_wait)
}

/// Sends a `DELETE` to `path` and, unless `no_wait`, waits for a long-running one.
pub fn delete_at(
    ctx: &Context,
    path: &str,
    api_version: &str,
    no_wait: bool,
) -> Result<Option<Value>, CliError> {
    let client = ctx.client()?;
    let reply = client.call(Method::DELETE, path, api_version, None)?;
    if !no_wait {
        client.wait(&reply, ctx.spinner())?;
    }
    Ok(None)
}

/// Lists a type in a group or the whole subscription.
pub fn list(ctx: &Context, ty: &ResourceType, group: Option<&str>) -> Result<(), CliError> {
    let path = ty.list_path(ctx.subscription()?, group);
    let reply = ctx
        .client()?
        .call(Method::GET, &path, ty.api_version, None)?;
    ctx.print(&list_value(reply))
}

/// The `value` of an ARM list reply.
pub fn list_value(reply: Reply) -> Value {
    reply
        .body
        .and_then(|mut b| b.get_mut("value").map(Value::take))
        .unwrap_or(Value::Array(Vec::new()))
}

/// POSTs to one of a resource's actions (`listKeys`, `readonlykeys`, …) and returns the body,
/// without rekey's extension fields.
pub fn action(
    ctx: &Context,
    ty: &ResourceType,
    r: &ResourceRef,
    name: &str,
    body: Option<&Value>,
) -> Result<Reply, CliError> {
    Ok(without_extensions(action_raw(ctx, ty, r, name, body)?))
}

fn action_raw(
    ctx: &Context,
    ty: &ResourceType,
    r: &ResourceRef,
    name: &str,
    body: Option<&Value>,
) -> Result<Reply, CliError> {
    ctx.client()?.call(
        Method::POST,
        &format!("{}/{name}", ty.path(r)),
        ty.api_version,
        body,
    )
}

/// POSTs a key-listing action (`listKeys`, …) and returns its body in az's shape, after a warning
/// on stderr for each slot that rekeyd's `x-rekey-keyAge` marks past its maximum age: the output
/// stays what scripts parse, and a person still learns which key to renew. `regenerate` gives the
/// command that renews a slot (named as the catalogue names it).
pub fn list_keys(
    ctx: &Context,
    ty: &ResourceType,
    r: &ResourceRef,
    name: &str,
    regenerate: impl Fn(&str) -> String,
) -> Result<Option<Value>, CliError> {
    let reply = action_raw(ctx, ty, r, name, None)?;
    for message in overdue_warnings(reply.body.as_ref(), &r.name, regenerate) {
        ctx.warn(&message);
    }
    Ok(without_extensions(reply).body)
}

/// One warning per overdue slot in a `listKeys` body's `x-rekey-keyAge`, in slot order.
fn overdue_warnings(
    body: Option<&Value>,
    resource: &str,
    regenerate: impl Fn(&str) -> String,
) -> Vec<String> {
    let Some(Value::Object(ages)) = body.and_then(|b| b.get("x-rekey-keyAge")) else {
        return Vec::new();
    };
    ages.iter()
        .filter(|(_, age)| age["overdue"] == Value::Bool(true))
        .map(|(slot, age)| {
            let days = |n: &Value| match n.as_i64() {
                Some(1) => "1 day".to_string(),
                Some(n) => format!("{n} days"),
                None => "an unknown number of days".to_string(),
            };
            let limit = match age.get("maxKeyAgeDays") {
                Some(max) => format!("past its maximum age of {}", days(max)),
                None => "past its maximum age".to_string(),
            };
            format!(
                "{slot} of {resource} is {} old, {limit}; regenerate it ({}).",
                days(&age["ageDays"]),
                regenerate(slot)
            )
        })
        .collect()
}

/// rekeyd adds extension fields (`x-rekey-lastUsed`, `x-rekey-createdAt`, `x-rekey-disabled`) to
/// key lists; the CLI prints az's shape, so scripts parsing az's output work unchanged.
fn without_extensions(mut reply: Reply) -> Reply {
    if let Some(Value::Object(map)) = reply.body.as_mut() {
        map.retain(|k, _| !k.starts_with("x-rekey-"));
    }
    reply
}

/// The headers that carry a regeneration's rotation options.
fn rotation_headers(rotation: &RotationOptions) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(seconds) = rotation.if_unused_for {
        headers.push(("x-rekey-if-unused-for", seconds.to_string()));
    }
    if let Some(seconds) = rotation.grace {
        headers.push(("x-rekey-grace-seconds", seconds.to_string()));
    }
    headers
}

/// `--what-if`: checks that the resource exists, prints the operation, and changes nothing.
fn what_if(
    ctx: &Context,
    ty: &ResourceType,
    r: &ResourceRef,
    operation: &str,
) -> Result<(), CliError> {
    // A GET changes nothing and lets a missing resource fail as it would for real.
    show(ctx, ty, r)?;
    write_out(&format!(
        "What if: Performing the operation \"{operation}\" on target \"{}\".\n",
        ty.path(r)
    ))
}

/// The safety switches of a regeneration. With `--what-if`, checks that the resource exists, prints
/// the operation and returns `None`; otherwise asks on a terminal (unless `--yes`), then POSTs
/// `regenerateKey` with `body` and the rotation options, resending it under one `Idempotency-Key`
/// if its answer is lost, and returns the reply.
pub fn regenerate(
    ctx: &Context,
    ty: &ResourceType,
    r: &ResourceRef,
    what: &str,
    body: &Value,
    safety: &Safety,
    rotation: &RotationOptions,
) -> Result<Option<Reply>, CliError> {
    if safety.what_if {
        what_if(ctx, ty, r, &format!("Regenerate {what}"))?;
        return Ok(None);
    }
    let old_key = match rotation.grace {
        Some(seconds) => format!("keep working for {seconds} seconds beside the new one"),
        None => "stop working at once".to_string(),
    };
    ctx.confirm(
        &format!(
            "Regenerate {what} of {} '{}' in resource group '{}'? Applications using the current \
             {what} {old_key}.",
            ty.noun, r.name, r.group
        ),
        safety.yes,
        OffTerminal::Proceed,
    )?;
    let reply = ctx
        .client()?
        .call_once(
            &format!("{}/regenerateKey", ty.path(r)),
            ty.api_version,
            Some(body),
            &rotation_headers(rotation),
            |why| ctx.warn(&format!("Regenerate {what}: {why}")),
        )
        .map_err(|e| match e {
            CliError::Service {
                status,
                code,
                message,
            } if code == "KeyInUse" => CliError::Service {
                status,
                code,
                message: format!("{message} Leave out --if-unused-for to regenerate it anyway."),
            },
            other => other,
        })?;
    if reply.headers.get(REPLAYED).is_some_and(|v| v == "true") {
        ctx.warn(&format!(
            "rekeyd had already regenerated {what} for this command; it answered as it did then, and \
             nothing was regenerated twice."
        ));
    }
    Ok(Some(without_extensions(reply)))
}

/// `keys disable` and `keys enable`: with `--what-if` prints the operation; disabling asks first
/// on a terminal (unless `--yes`), as regenerating does. Prints nothing on success (204).
pub fn switch_key(
    ctx: &Context,
    ty: &ResourceType,
    r: &ResourceRef,
    what: &str,
    body: &Value,
    enable: bool,
    safety: &Safety,
) -> Result<Option<Value>, CliError> {
    let (verb, action_name) = if enable {
        ("Enable", "enableKey")
    } else {
        ("Disable", "disableKey")
    };
    if safety.what_if {
        what_if(ctx, ty, r, &format!("{verb} {what}"))?;
        return Ok(None);
    }
    if !enable {
        ctx.confirm(
            &format!(
                "Disable {what} of {} '{}' in resource group '{}'? Applications using it are \
                 refused until it is enabled again.",
                ty.noun, r.name, r.group
            ),
            safety.yes,
            OffTerminal::Proceed,
        )?;
    }
    action(ctx, ty, r, action_name, Some(body))?;
    Ok(None)
}

/// The columns of `keys usage` as a table.
const USAGE_COLUMNS: &[&str] = &[
    "KeyName",
    "LastUsed",
    "LastClient",
    "Requests24h",
    "RetiredPresented24h",
    "RetiredLastPresented",
    "RetiredLastClient",
];

/// `keys usage`: each slot's use over 24 hours (`listKeyUsage`), one row per slot in a table by
/// default; `-o json` prints rekeyd's entries whole (with `perMinute`).
pub fn usage(ctx: &Context, ty: &ResourceType, targets: &[ResourceRef]) -> Result<(), CliError> {
    let mut results = Vec::new();
    for r in targets {
        let reply = ctx.client()?.call(
            Method::POST,
            &format!("{}/listKeyUsage", ty.path(r)),
            ty.api_version,
            None,
        )?;
        results.push(list_value(reply));
    }
    let value = match results.len() {
        1 => results.remove(0),
        _ => Value::Array(results),
    };
    ctx.print_table_first(&value, |value| (USAGE_COLUMNS, usage_rows(value)))
}

/// The table's rows: one per slot, of one resource's entries or of several resources' lists.
fn usage_rows(value: &Value) -> Vec<Vec<String>> {
    let mut entries = Vec::new();
    for item in value.as_array().into_iter().flatten() {
        match item {
            Value::Array(inner) => entries.extend(inner),
            entry => entries.push(entry),
        }
    }
    let text = |v: &Value, none: &str| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => none.to_string(),
    };
    entries
        .into_iter()
        .map(|e| {
            let retired = &e["retired"];
            vec![
                text(&e["keyName"], "-"),
                text(&e["lastUsed"], "never"),
                text(&e["lastClientAddress"], "-"),
                text(&e["requests24h"], "0"),
                text(&retired["presentations24h"], "0"),
                text(&retired["lastPresented"], "never"),
                text(&retired["lastClientAddress"], "-"),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_rows_show_none_as_never_or_a_dash_and_flatten_several_resources() {
        let used = json!({
            "keyName": "Key1", "lastUsed": "2026-01-01T00:00:00Z", "lastClientAddress": "10.0.0.7",
            "requests24h": 3, "perMinute": [],
            "retired": {"regeneratedAt": null, "presentations24h": 2,
                "lastPresented": "2026-01-01T00:01:00Z", "lastClientAddress": "10.0.0.8"}
        });
        let unused = json!({
            "keyName": "Key2", "lastUsed": null, "lastClientAddress": null, "requests24h": 0,
            "perMinute": [],
            "retired": {"regeneratedAt": null, "presentations24h": 0, "lastPresented": null,
                "lastClientAddress": null}
        });
        let one = usage_rows(&json!([used.clone(), unused.clone()]));
        assert_eq!(
            one,
            [
                [
                    "Key1",
                    "2026-01-01T00:00:00Z",
                    "10.0.0.7",
                    "3",
                    "2",
                    "2026-01-01T00:01:00Z",
                    "10.0.0.8"
                ],
                ["Key2", "never", "-", "0", "0", "never", "-"]
            ]
        );
        let several = usage_rows(&json!([[used], [unused]]));
        assert_eq!(several, one);
        assert_eq!(one[0].len(), USAGE_COLUMNS.len());
    }
}
