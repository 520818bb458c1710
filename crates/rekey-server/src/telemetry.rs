//! Owns logging set-up. Filter with `RUST_LOG` (default `info`); `--log-format` picks text or JSON
//! lines. Nothing rekey logs carries a key or token: requests are logged by method, path, status and
//! (data plane) client address only. Lines logged while a request is handled are inside its
//! `request` span, whose `request_id` is the answer's `x-ms-request-id`: in text after the level, in
//! JSON as `span.request_id`.

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields` (with `message`) and, within
    /// a request, `span` (with `request_id`).
    Json,
}

pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
