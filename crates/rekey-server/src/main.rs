//! The `rekeyd` binary: parses flags and environment, sets up logging, runs the server.

use clap::Parser;

// The data plane allocates a little per request on several threads; mimalloc's thread-local
// heaps measured faster than glibc's allocator in bench/verify.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = rekey_server::Config::parse();
    rekey_server::telemetry::init(config.log_format);
    rekey_server::run(config).await
}
