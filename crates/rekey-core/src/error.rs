//! Owns the one error the domain raises: input that does not fit. It carries the ARM error code the
//! caller should see and a message that names the field, so the server maps it without guessing.

/// Input that failed a domain check. `code` is the ARM error code (`InvalidResourceName`, ...),
/// `message` names the field and what is allowed. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct InvalidInput {
    pub code: &'static str,
    pub message: String,
}

impl InvalidInput {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
