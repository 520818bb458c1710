//! Owns what every command shares: the global options, the profile, the HTTP client (made on first use,
//! so `rekey login` and `rekey completion` need none), the subscription commands act in, printing a
//! result through `--query` and `--output`, warnings that `--only-show-errors` silences, and the
//! confirmation prompt.

use std::cell::OnceCell;
use std::io::{BufRead as _, IsTerminal as _, Write as _};

use rekey_api::arm::Subscription;
use rekey_api::List;
use reqwest::Method;
use serde_json::Value;

use crate::cli::Global;
use crate::client::Client;
use crate::config::Profile;
use crate::error::CliError;
use crate::output::{self, Format, Query};
use crate::target::SUBSCRIPTIONS_API_VERSION;

pub struct Context {
    pub global: Global,
    query: Option<Query>,
    /// Loaded on first use, so a damaged profile never stands in the way of `rekey login`.
    profile: OnceCell<Profile>,
    client: OnceCell<Client>,
    subscription: OnceCell<String>,
}

/// What to do when a confirmation cannot be asked because stdin is not a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffTerminal {
    /// Go ahead: scripts written for az's key commands, which never ask, keep working.
    Proceed,
    /// Refuse without `--yes`, as az does for deletions.
    Refuse,
}

/// Writes to stdout; a reader that went away (`| head`) is not a failure of the command.
pub fn write_out(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Other(format!("Cannot write the output: {e}")))
        }
        _ => Ok(()),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Context {
    pub fn new(global: Global) -> Result<Self, CliError> {
        let query = global.query.as_deref().map(Query::parse).transpose()?;
        Ok(Self {
            global,
            query,
            profile: OnceCell::new(),
            client: OnceCell::new(),
            subscription: OnceCell::new(),
        })
    }

    pub fn profile(&self) -> Result<&Profile, CliError> {
        if let Some(profile) = self.profile.get() {
            return Ok(profile);
        }
        let loaded = Profile::load()?;
        Ok(self.profile.get_or_init(|| loaded))
    }

    /// The client for the endpoint and token of `REKEY_ENDPOINT`/`REKEY_TOKEN`, else the profile.
    pub fn client(&self) -> Result<&Client, CliError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let profile = self.profile()?;
        let endpoint = env("REKEY_ENDPOINT").or_else(|| profile.endpoint.clone());
        let token = env("REKEY_TOKEN").or_else(|| profile.token.clone());
        let (Some(endpoint), Some(token)) = (endpoint, token) else {
            return Err(CliError::NotLoggedIn);
        };
        let ca_file = env("REKEY_CA_BUNDLE")
            .map(Into::into)
            .or_else(|| profile.ca_file.clone());
        let client = Client::new(
            &endpoint,
            token.trim(),
            ca_file.as_deref(),
            self.global.debug,
        )?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The subscriptions the token can see.
    pub fn subscriptions(&self) -> Result<Vec<Subscription>, CliError> {
        let reply = self.client()?.call(
            Method::GET,
            "/subscriptions",
            SUBSCRIPTIONS_API_VERSION,
            None,
        )?;
        let list: List<Subscription> = serde_json::from_value(reply.body.unwrap_or(Value::Null))
            .map_err(|e| {
                CliError::Other(format!("The subscription list is not what ARM sends: {e}"))
            })?;
        Ok(list.value)
    }

    /// Finds a subscription by id or display name (case-insensitive), as `az account set` does.
    pub fn find_subscription(&self, name_or_id: &str) -> Result<Subscription, CliError> {
        let wanted = name_or_id.trim();
        self.subscriptions()?
            .into_iter()
            .find(|s| {
                s.subscription_id.eq_ignore_ascii_case(wanted)
                    || s.display_name.eq_ignore_ascii_case(wanted)
            })
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "The subscription of '{wanted}' doesn't exist in cloud 'rekey' \
                     (see `rekey account list`)."
                ))
            })
    }

    /// The subscription to act in: `--subscription`, else the profile's, else the first one the
    /// token can see.
    pub fn subscription(&self) -> Result<&str, CliError> {
        if let Some(sub) = self.subscription.get() {
            return Ok(sub);
        }
        let chosen = match (&self.global.subscription, &self.profile()?.subscription_id) {
            (Some(wanted), _) if rekey_core::SubscriptionId::parse(wanted).is_ok() => {
                wanted.to_ascii_lowercase()
            }
            (Some(wanted), _) => self.find_subscription(wanted)?.subscription_id,
            (None, Some(stored)) => stored.clone(),
            (None, None) => self
                .subscriptions()?
                .into_iter()
                .next()
                .map(|s| s.subscription_id)
                .ok_or_else(|| CliError::Other("The token can see no subscription.".into()))?,
        };
        Ok(self.subscription.get_or_init(|| chosen))
    }

    /// Prints a result through `--query` and `--output`; a null result prints nothing, as in az.
    pub fn print(&self, value: &Value) -> Result<(), CliError> {
        self.print_as(value, self.global.output.unwrap_or(Format::Json))
    }

    fn print_as(&self, value: &Value, format: Format) -> Result<(), CliError> {
        let value = match &self.query {
            Some(query) => query.apply(value)?,
            None => value.clone(),
        };
        if value.is_null() {
            return Ok(());
        }
        write_out(&output::render(&value, format))
    }

    /// Prints a result as a table unless `--output` says otherwise: `table` (the columns and rows
    /// `view` makes of it, as az's table transformers do, or, with `--query`, the query's result as
    /// any table), else as [`Context::print`] does.
    pub fn print_table_first(
        &self,
        value: &Value,
        view: impl Fn(&Value) -> (&'static [&'static str], Vec<Vec<String>>),
    ) -> Result<(), CliError> {
        let format = self.global.output.unwrap_or(Format::Table);
        if format != Format::Table || self.query.is_some() {
            return self.print_as(value, format);
        }
        let (columns, cells) = view(value);
        write_out(&output::render_table(columns, &cells))
    }

    /// Prints a warning to stderr unless `--only-show-errors`.
    pub fn warn(&self, message: &str) {
        if !self.global.only_show_errors {
            eprintln!("WARNING: {message}");
        }
    }

    /// A spinner makes sense only where a person watches stderr.
    pub fn spinner(&self) -> bool {
        std::io::stderr().is_terminal()
    }

    /// Asks `question` on the terminal unless `yes`; anything but "y"/"yes" cancels.
    pub fn confirm(&self, question: &str, yes: bool, off: OffTerminal) -> Result<(), CliError> {
        if yes {
            return Ok(());
        }
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return match off {
                OffTerminal::Proceed => Ok(()),
                OffTerminal::Refuse => Err(CliError::Usage(
                    "Unable to prompt for confirmation as no tty available. Use --yes.".into(),
                )),
            };
        }
        eprint!("{question} (y/n): ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        stdin
            .lock()
            .read_line(&mut answer)
            .map_err(|e| CliError::Other(format!("Cannot read the answer: {e}")))?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(()),
            _ => Err(CliError::Cancelled),
        }
    }
}
