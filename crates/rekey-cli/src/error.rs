//! Owns [`CliError`], every way a command can fail, with the exit code az uses for it and the text az
//! prints: a service error as `(Code) Message` followed by `Code:` and `Message:` lines.

use rekey_api::ErrorResponse;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong in a way clap cannot see (a bad `--ids`, a missing token).
    #[error("{0}")]
    Usage(String),
    /// The service answered with an error status.
    #[error("({code}) {message}")]
    Service {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer from the endpoint at all.
    #[error(
        "Cannot reach rekey at {endpoint}: {reason}. Check that rekeyd is running there, or run \
         `rekey login --endpoint URL` to point the CLI at another endpoint."
    )]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "Please run `rekey login --endpoint URL --token TOKEN` to set up a profile, or set \
         REKEY_ENDPOINT and REKEY_TOKEN."
    )]
    NotLoggedIn,
    /// The user answered "no" to a confirmation prompt (az reports this as an error too).
    #[error("Operation cancelled.")]
    Cancelled,
    /// Anything else: the profile could not be read or written, a reply was not what ARM sends.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// An error reply: ARM's envelope when the body has one, else the status line and the raw text.
    pub fn from_reply(status: u16, reason: &str, body: &str) -> Self {
        match serde_json::from_str::<ErrorResponse>(body) {
            Ok(envelope) => CliError::Service {
                status,
                code: envelope.error.code,
                message: envelope.error.message,
            },
            Err(_) => CliError::Service {
                status,
                code: reason.replace(' ', ""),
                message: if body.trim().is_empty() {
                    format!("Operation returned an invalid status '{reason}'")
                } else {
                    body.chars().take(500).collect()
                },
            },
        }
    }

    /// 0 is success; az uses 3 for "not found" and 2 for a usage error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Service { status: 404, .. } => 3,
            _ => 1,
        }
    }

    /// The text for stderr, as az prints it.
    pub fn report(&self) -> String {
        match self {
            CliError::Service { code, message, .. } => {
                format!("ERROR: ({code}) {message}\nCode: {code}\nMessage: {message}")
            }
            other => format!("ERROR: {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_error_prints_code_and_message_lines_like_az() {
        let err = CliError::from_reply(
            404,
            "Not Found",
            r#"{"error":{"code":"ResourceGroupNotFound","message":"Resource group 'x' could not be found."}}"#,
        );
        assert_eq!(
            err.report(),
            "ERROR: (ResourceGroupNotFound) Resource group 'x' could not be found.\n\
             Code: ResourceGroupNotFound\nMessage: Resource group 'x' could not be found."
        );
        assert_eq!(err.exit_code(), 3);
    }

    #[test]
    fn exit_codes_separate_service_usage_and_not_found() {
        let service = CliError::from_reply(400, "Bad Request", "{}");
        assert_eq!(service.exit_code(), 1);
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::Cancelled.exit_code(), 1);
    }

    #[test]
    fn a_body_that_is_not_arm_json_keeps_the_status() {
        let err = CliError::from_reply(502, "Bad Gateway", "");
        assert_eq!(
            err.report(),
            "ERROR: (BadGateway) Operation returned an invalid status 'Bad Gateway'\n\
             Code: BadGateway\nMessage: Operation returned an invalid status 'Bad Gateway'"
        );
    }
}
