//! Owns `rekey login` and `rekey logout`. Login checks the endpoint and token by listing the
//! subscriptions before anything is stored, then writes the profile (0600) and prints the
//! subscriptions as `az login` does.

use std::path::{Path, PathBuf};

use rekey_api::arm::Subscription;
use rekey_api::List;
use reqwest::Method;
use serde_json::Value;

use super::account::render_subscriptions;
use crate::cli::LoginArgs;
use crate::client::Client;
use crate::config::Profile;
use crate::context::Context;
use crate::error::CliError;
use crate::target::SUBSCRIPTIONS_API_VERSION;

/// A token file holds the token alone, or is rekeyd's bootstrap.json (`token`, `subscriptionId`).
fn read_token_file(path: &Path) -> Result<(String, Option<String>), CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "argument --token-file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    if let Ok(Value::Object(boot)) = serde_json::from_str::<Value>(&text) {
        let field = |name| boot.get(name).and_then(Value::as_str).map(str::to_string);
        let token = field("token").ok_or_else(|| {
            CliError::Usage(format!(
                "argument --token-file: {} is JSON without a \"token\" field",
                path.display()
            ))
        })?;
        return Ok((token, field("subscriptionId")));
    }
    Ok((text.trim().to_string(), None))
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

pub fn login(ctx: &Context, args: LoginArgs) -> Result<(), CliError> {
    let (token, bootstrap_subscription) = match (&args.token, &args.token_file) {
        (Some(token), _) => (token.trim().to_string(), None),
        (None, Some(path)) => read_token_file(path)?,
        (None, None) => match std::env::var("REKEY_TOKEN") {
            Ok(token) if !token.trim().is_empty() => (token.trim().to_string(), None),
            _ => {
                return Err(CliError::Usage(
                    "rekey login needs --token, --token-file or REKEY_TOKEN".into(),
                ))
            }
        },
    };
    if token.is_empty() {
        return Err(CliError::Usage("the token is empty".into()));
    }
    let ca_file = args.ca_file.map(absolute);
    let client = Client::new(&args.endpoint, &token, ca_file.as_deref(), ctx.global.debug)?;
    let reply = client.call(
        Method::GET,
        "/subscriptions",
        SUBSCRIPTIONS_API_VERSION,
        None,
    )?;
    let subscriptions: Vec<Subscription> =
        serde_json::from_value::<List<Subscription>>(reply.body.unwrap_or(Value::Null))
            .map_err(|e| {
                CliError::Other(format!(
                    "{} answered the subscription list with something ARM does not send ({e}); \
                     is it a rekey endpoint?",
                    client.endpoint()
                ))
            })?
            .value;
    // Prefer what the user asked for, then the bootstrap's default subscription, then the first.
    let wanted = ctx.global.subscription.clone().or(bootstrap_subscription);
    let chosen = wanted
        .as_deref()
        .and_then(|w| {
            subscriptions.iter().find(|s| {
                s.subscription_id.eq_ignore_ascii_case(w) || s.display_name.eq_ignore_ascii_case(w)
            })
        })
        .or_else(|| subscriptions.first())
        .map(|s| s.subscription_id.clone());
    let profile = Profile {
        endpoint: Some(client.endpoint().to_string()),
        token: Some(token),
        subscription_id: chosen.clone(),
        ca_file,
    };
    profile.save()?;
    ctx.print(&render_subscriptions(&subscriptions, chosen.as_deref()))
}

pub fn logout() -> Result<(), CliError> {
    Profile::remove()?;
    Ok(())
}
