//! Owns `rekey account list|show|set`: the subscriptions the token can see, shown in `az account`'s
//! shape, and the choice of the one commands act in (stored in the profile).

use rekey_api::arm::Subscription;
use serde_json::{json, Value};

use crate::cli::AccountCommand;
use crate::context::Context;
use crate::error::CliError;

/// One subscription as `az account show` prints it.
fn render(s: &Subscription, default: Option<&str>) -> Value {
    json!({
        "cloudName": "rekey",
        "homeTenantId": s.tenant_id,
        "id": s.subscription_id,
        "isDefault": default.is_some_and(|d| d.eq_ignore_ascii_case(&s.subscription_id)),
        "managedByTenants": [],
        "name": s.display_name,
        "state": s.state,
        "tenantId": s.tenant_id,
    })
}

pub fn render_subscriptions(subscriptions: &[Subscription], default: Option<&str>) -> Value {
    Value::Array(subscriptions.iter().map(|s| render(s, default)).collect())
}

pub fn run(ctx: &Context, command: AccountCommand) -> Result<(), CliError> {
    match command {
        AccountCommand::List => {
            let subscriptions = ctx.subscriptions()?;
            // A token that sees no subscription has no default either: the list is just empty.
            let current = if subscriptions.is_empty() {
                None
            } else {
                Some(ctx.subscription()?)
            };
            ctx.print(&render_subscriptions(&subscriptions, current))
        }
        AccountCommand::Show(args) => {
            let current = ctx.subscription()?.to_string();
            let wanted = args.name.unwrap_or_else(|| current.clone());
            let found = ctx.find_subscription(&wanted)?;
            ctx.print(&render(&found, Some(&current)))
        }
        AccountCommand::Set(args) => {
            let wanted = args
                .name
                .or_else(|| ctx.global.subscription.clone())
                .ok_or_else(|| {
                    CliError::Usage(
                        "the following arguments are required: --subscription/-s".into(),
                    )
                })?;
            let found = ctx.find_subscription(&wanted)?;
            let mut profile = ctx.profile()?.clone();
            profile.subscription_id = Some(found.subscription_id);
            profile.save()?;
            Ok(())
        }
    }
}
