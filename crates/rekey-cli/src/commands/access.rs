//! Owns the access commands: `rekey token create|list|revoke` (rekeyd's service tokens),
//! `rekey role assignment create|list|delete` and `role definition list` (Azure's
//! Microsoft.Authorization, with az's flags), `rekey monitor activity-log list` (the audit log in
//! Azure's activity-log shape) and `rekey audit verify` (the log's hash chain).

use rekey_api::authorization::{RoleAssignmentCreate, RoleAssignmentCreateProperties, TokenCreate};
use reqwest::Method;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::{for_each, list_value};
use crate::cli::{
    ActivityLogCommand, AuditCommand, MonitorCommand, RoleAssignmentCommand, RoleCommand,
    RoleDefinitionCommand, TokenCommand,
};
use crate::context::Context;
use crate::error::CliError;

/// The Microsoft.Authorization api-version az sends for roles and assignments.
const AUTHORIZATION_API_VERSION: &str = "2022-04-01";
/// The only activity-log api-version there is.
const ACTIVITY_LOG_API_VERSION: &str = "2015-04-01";
const ASSIGNMENTS: &str = "/providers/Microsoft.Authorization/roleAssignments";
/// az's default `--offset` for `monitor activity-log list`.
const DEFAULT_OFFSET: &str = "6h";

pub fn token(ctx: &Context, command: TokenCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    match command {
        TokenCommand::Create { name, expires_in } => {
            let body = serde_json::to_value(TokenCreate { name, expires_in })
                .expect("a token body serializes");
            let reply = client.call_query(Method::POST, "/rekey/tokens", None, &[], Some(&body))?;
            // rekeyd keeps only a digest: this output is the one chance to store the token.
            ctx.warn("The token is shown only now; store it somewhere safe.");
            ctx.print(&reply.body.unwrap_or(Value::Null))
        }
        TokenCommand::List => {
            let reply = client.call_query(Method::GET, "/rekey/tokens", None, &[], None)?;
            ctx.print(&list_value(reply))
        }
        TokenCommand::Revoke { id } => {
            let path = format!("/rekey/tokens/{}", id.trim());
            client.call_query(Method::DELETE, &path, None, &[], None)?;
            Ok(())
        }
    }
}

pub fn role(ctx: &Context, command: RoleCommand) -> Result<(), CliError> {
    match command {
        RoleCommand::Assignment(command) => assignment(ctx, command),
        RoleCommand::Definition(RoleDefinitionCommand::List { name }) => {
            ctx.print(&definitions(ctx, name.as_deref())?)
        }
    }
}

/// The current subscription's role definitions, only the one named when `name` is given.
fn definitions(ctx: &Context, name: Option<&str>) -> Result<Value, CliError> {
    let path = format!(
        "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions",
        ctx.subscription()?
    );
    let filter = name.map(|n| format!("roleName eq '{}'", n.trim()));
    let query: Vec<(&str, &str)> = filter.iter().map(|f| ("$filter", f.as_str())).collect();
    let reply = ctx.client()?.call_query(
        Method::GET,
        &path,
        Some(AUTHORIZATION_API_VERSION),
        &query,
        None,
    )?;
    Ok(list_value(reply))
}

/// A role definition id for `--role`: a definition id or GUID as given, else the id of the role of
/// that name (as az resolves it, in the current subscription).
fn role_definition_id(ctx: &Context, role: &str) -> Result<String, CliError> {
    let role = role.trim();
    if role.contains("/roleDefinitions/") || uuid::Uuid::parse_str(role).is_ok() {
        return Ok(role.to_string());
    }
    definitions(ctx, Some(role))?
        .as_array()
        .and_then(|roles| roles.first())
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "Role '{role}' doesn't exist (see `rekey role definition list`)."
            ))
        })
}

fn assignment(ctx: &Context, command: RoleAssignmentCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    match command {
        RoleAssignmentCommand::Create {
            assignee,
            role,
            scope,
        } => {
            let body = RoleAssignmentCreate {
                properties: RoleAssignmentCreateProperties {
                    role_definition_id: role_definition_id(ctx, &role)?,
                    principal_id: assignee.trim().to_string(),
                    principal_type: None,
                },
            };
            let body = serde_json::to_value(body).expect("an assignment body serializes");
            // ARM names a new assignment with a GUID the client picks, as az does.
            let path = format!(
                "{}{ASSIGNMENTS}/{}",
                scope.trim().trim_end_matches('/'),
                uuid::Uuid::new_v4()
            );
            let reply = client.call_query(
                Method::PUT,
                &path,
                Some(AUTHORIZATION_API_VERSION),
                &[],
                Some(&body),
            )?;
            ctx.print(&reply.body.unwrap_or(Value::Null))
        }
        RoleAssignmentCommand::List { scope, assignee } => {
            let scope = match scope {
                Some(scope) => scope.trim().trim_end_matches('/').to_string(),
                None => format!("/subscriptions/{}", ctx.subscription()?),
            };
            let filter = assignee.map(|p| format!("principalId eq '{}'", p.trim()));
            let query: Vec<(&str, &str)> = filter.iter().map(|f| ("$filter", f.as_str())).collect();
            let reply = client.call_query(
                Method::GET,
                &format!("{scope}{ASSIGNMENTS}"),
                Some(AUTHORIZATION_API_VERSION),
                &query,
                None,
            )?;
            ctx.print(&list_value(reply))
        }
        RoleAssignmentCommand::Delete { ids } => {
            for id in &ids {
                if !id.contains(&format!("{ASSIGNMENTS}/")) {
                    return Err(CliError::Usage(format!(
                        "'{id}' is not a role assignment id: it must look like \
                         {{scope}}{ASSIGNMENTS}/{{guid}}."
                    )));
                }
            }
            for_each(ctx, &ids, |id| {
                client.call_query(
                    Method::DELETE,
                    id.trim(),
                    Some(AUTHORIZATION_API_VERSION),
                    &[],
                    None,
                )?;
                Ok(None)
            })
        }
    }
}

/// `6h`, `7d`, `30m`, or a sum like `1d12h` (az's `##d##h`).
fn parse_offset(raw: &str) -> Option<Duration> {
    let seconds = crate::duration::seconds(raw).ok()?;
    Some(Duration::seconds(i64::try_from(seconds).ok()?))
}

pub fn monitor(ctx: &Context, command: MonitorCommand) -> Result<(), CliError> {
    let MonitorCommand::ActivityLog(ActivityLogCommand::List { offset, start_time }) = command;
    let start = match start_time {
        Some(raw) => OffsetDateTime::parse(raw.trim(), &Rfc3339).map_err(|_| {
            CliError::Usage(format!(
                "--start-time must be an RFC 3339 time such as 2026-01-01T00:00:00Z; got \"{raw}\""
            ))
        })?,
        None => {
            let raw = offset.as_deref().unwrap_or(DEFAULT_OFFSET);
            let offset = parse_offset(raw).ok_or_else(|| {
                CliError::Usage(format!(
                    "--offset must look like 30m, 6h, 7d or 1d12h; got \"{raw}\""
                ))
            })?;
            OffsetDateTime::now_utc() - offset
        }
    };
    let start = start
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("a UTC time formats as RFC 3339");
    let path = format!(
        "/subscriptions/{}/providers/Microsoft.Insights/eventtypes/management/values",
        ctx.subscription()?
    );
    let filter = format!("eventTimestamp ge '{start}'");
    let reply = ctx.client()?.call_query(
        Method::GET,
        &path,
        Some(ACTIVITY_LOG_API_VERSION),
        &[("$filter", filter.as_str())],
        None,
    )?;
    ctx.print(&list_value(reply))
}

pub fn audit(ctx: &Context, command: AuditCommand) -> Result<(), CliError> {
    let AuditCommand::Verify = command;
    let reply = ctx
        .client()?
        .call_query(Method::GET, "/rekey/audit/verify", None, &[], None)?;
    let answer = reply.body.unwrap_or(Value::Null);
    ctx.print(&answer)?;
    if answer.get("intact").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    // A script checks the exit code; a person reads which record to look at.
    let seq = answer
        .get("firstBrokenSeq")
        .map(Value::to_string)
        .unwrap_or_else(|| "unknown".into());
    let reason = answer
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("no reason given");
    Err(CliError::Other(format!(
        "The audit log is not intact: the first broken record is {seq} ({reason})."
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_take_az_units_and_sums() {
        assert_eq!(parse_offset("6h"), Some(Duration::hours(6)));
        assert_eq!(parse_offset("7d"), Some(Duration::days(7)));
        assert_eq!(parse_offset("30m"), Some(Duration::minutes(30)));
        assert_eq!(parse_offset("1d12h"), Some(Duration::hours(36)));
        for bad in ["", "6", "h", "0h", "6w", "1.5h"] {
            assert_eq!(parse_offset(bad), None, "{bad}");
        }
    }
}
