//! The `rekeyd` binary: parses flags and environment, sets up logging, runs the server.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = rekey_server::Config::parse();
    rekey_server::telemetry::init();
    rekey_server::run(config).await
}
