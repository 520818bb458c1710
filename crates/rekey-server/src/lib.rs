//! rekeyd as a library: configuration, the HTTP application (ARM management API), its routes, auth and
//! errors, and [`run`], which opens the store, bootstraps, binds and serves. The binary in `main.rs`
//! only parses flags and calls [`run`].

pub mod app;
pub mod auth;
pub mod authz;
pub mod bootstrap;
pub mod config;
pub mod connections;
pub mod dataplane;
pub mod error;
pub mod events;
pub mod fastpath;
pub mod jwt;
pub mod metrics;
pub mod oauth;
pub mod ready;
pub mod request_ids;
pub mod route_table;
pub mod routes;
pub mod rules;
pub mod state;
pub mod telemetry;
pub mod web;

use std::sync::Arc;

use anyhow::Context as _;
use dataplane::index::Consistency;
use rekey_api::RenderContext;
use rekey_store::{ChangeNotice, MasterKey, PgStore, PgStoreOptions, Sealer, SqliteStore, Store};

pub use config::Config;

fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Some(text) = &config.master_key {
        return MasterKey::parse(text).context("REKEY_MASTER_KEY");
    }
    let path = config
        .master_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("master.key"));
    Ok(MasterKey::load_or_create(&path)?)
}

async fn open_store(config: &Config, sealer: Sealer) -> anyhow::Result<Arc<dyn Store>> {
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| SqliteStore::url_in(&config.data_dir));
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::open(&url, sealer)
                .await
                .context("opening the SQLite database")?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // The URL may hold a password: it is never logged.
        Ok(Arc::new(
            PgStore::connect(&url, sealer, PgStoreOptions::default())
                .await
                .context("connecting to PostgreSQL")?,
        ))
    } else {
        anyhow::bail!("unsupported database URL scheme (rekey supports sqlite:// and postgres://)")
    }
}

/// Creates the data directory (master key, bootstrap token, SQLite database) accessible to rekeyd's
/// user only (0700), whatever the umask, and tightens an existing one that is looser.
fn private_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let context = || format!("creating the data directory {}", dir.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(context)?;
        let mode = std::fs::metadata(dir)
            .with_context(context)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
                .with_context(context)?;
            tracing::warn!(
                path = %dir.display(),
                was = format!("{mode:o}"),
                "made the data directory accessible to rekeyd's user only"
            );
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).with_context(context)?;
    Ok(())
}

/// Runs rekeyd until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    if let Some(path) = &config.ready_file {
        ready::clear(path)?;
    }
    private_data_dir(&config.data_dir)?;
    let sealer = Sealer::new(&master_key(&config)?);
    let store = open_store(&config, sealer).await?;
    let (record, written) = bootstrap::ensure(store.as_ref(), &config.data_dir).await?;
    if let Some(path) = written {
        tracing::info!(path = %path.display(), "wrote the owner token and default subscription to bootstrap.json");
    }

    #[cfg(unix)]
    match connections::raise_open_file_limit() {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    let listener =
        connections::listen(config.listen).with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;
    let tls = config.tls();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{local}"))
        .trim_end_matches('/')
        .to_string();
    let notices = store.listen().await.context("listening for changes")?;
    // Other nodes write to a store that can be listened to: only then can the index fall behind.
    let membership = match (&notices, config.max_staleness_ms) {
        (Some(_), 0) => store
            .node_table()
            .map(|table| Arc::new(dataplane::membership::Membership::new(table))),
        _ => None,
    };
    let consistency = match (&notices, &membership) {
        (None, _) => Consistency::OnlyWriter,
        (Some(_), Some(_)) => Consistency::Leased,
        (Some(_), None) => {
            Consistency::Bounded(std::time::Duration::from_millis(config.max_staleness_ms))
        }
    };
    // The index fills in the background (`load_index`): until then each check reads its one
    // resource from the store, so a restart with a million resources answers at once.
    let index = dataplane::index::KeyIndex::new(store.clone(), consistency)
        .await
        .context("reading the change feed's position")?;
    let dataplane = Arc::new(dataplane::DataPlane {
        index,
        uses: Default::default(),
        counts: Default::default(),
        membership,
        throttle: dataplane::throttle::Throttle::new(
            config.auth_failure_limit,
            std::time::Duration::from_secs(config.auth_failure_window_seconds),
        ),
        client: dataplane::gateway::client(config.upstream_ca_file.as_deref())?,
        max_body_bytes: config.max_data_plane_body_bytes,
        trusted_proxies: dataplane::proxies::TrustedProxies::new(config.trusted_proxies.clone()),
        refusal_log: dataplane::refusal_log::RefusalLog::default(),
        retired_window_micros: (config.retired_key_window_seconds as i64).saturating_mul(1_000_000),
    });
    let events = Arc::new(
        events::Events::new(
            std::time::Duration::from_millis(config.event_retry_base_ms),
            std::time::Duration::from_millis(config.event_poll_ms),
        )
        .with_metrics(Arc::new(metrics::EventCounts)),
    );
    spawn_background(
        store.clone(),
        dataplane.clone(),
        events.clone(),
        &config,
        notices.is_some(),
    );
    tokio::spawn(load_index(dataplane.clone(), notices, config.clone()));
    let issuer = oauth::TokenIssuer::load(
        store.as_ref(),
        time::Duration::seconds(config.access_token_ttl_seconds as i64),
    )
    .await
    .context("loading the token-signing keys")?;
    if let Some(path) = &config.ready_file {
        let url = format!("{scheme}://{local}");
        ready::write(path, &url, store.as_ref(), &config.data_dir, &record).await?;
    }
    events::spawn(
        store.clone(),
        events.clone(),
        std::time::Duration::from_millis(config.key_age_sweep_ms),
    );
    let (final_flush_store, final_flush_events) = (store.clone(), events.clone());
    let app = app::build(
        app::Services {
            store,
            dataplane: dataplane.clone(),
            events,
            issuer: Arc::new(issuer),
        },
        RenderContext { public_url },
        record.tenant_id,
        config.max_body_bytes,
        config.metrics_access,
    )
    .with_body_read_timeout(std::time::Duration::from_secs(
        config.body_read_timeout_seconds,
    ));
    tracing::info!("rekeyd listening on {scheme}://{local}");

    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    let fast_path_shutdown = fastpath::Shutdown::default();
    let shutting_down = fast_path_shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        shutting_down.start();
        shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let make = tower::service_fn(move |remote: std::net::SocketAddr| {
        std::future::ready(Ok::<_, std::convert::Infallible>(
            app.for_connection(remote),
        ))
    });
    // Slow-loris defence: a client must start talking, and send each request's headers, within
    // the header timeout, or its connection is closed.
    let header_timeout = std::time::Duration::from_secs(config.header_read_timeout_seconds);
    let silent = connections::FirstByteTimeout::new(
        axum_server::accept::DefaultAcceptor::new(),
        header_timeout,
    );
    // Simple data-plane calls are answered before hyper sees the connection (`fastpath`), over
    // TLS as over plain TCP: a client that chose HTTP/2 by ALPN opens with HTTP/2's preface, which
    // the fast path hands to hyper at once.
    let fast_path = fastpath::FastPath::new(
        silent,
        header_timeout,
        config.max_header_bytes,
        fast_path_shutdown,
    );
    match tls {
        Some((cert, key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_config(tls_config(&cert, &key)?);
            let mut server = axum_server::from_tcp_rustls(listener, tls)
                .map(|rustls| fast_path.map(|silent| rustls.acceptor(silent)))
                .handle(handle);
            connections::configure_http(&mut server, header_timeout, config.max_header_bytes);
            server.serve(make).await?;
        }
        None => {
            let mut server = axum_server::from_tcp(listener)
                .acceptor(fast_path)
                .handle(handle);
            connections::configure_http(&mut server, header_timeout, config.max_header_bytes);
            server.serve(make).await?;
        }
    }
    // What the data plane noted since the last flush is written before the process ends.
    let (index, store) = (&dataplane.index, final_flush_store.as_ref());
    dataplane::usage::flush_uses(index, &dataplane.uses, store).await;
    dataplane::usage::flush_counts(index, &dataplane.counts, store, &final_flush_events).await;
    // No check is served any more: the others need not wait for this node's lease to lapse.
    if let Some(membership) = &dataplane.membership {
        if let Err(e) = membership.leave(&dataplane.index).await {
            tracing::warn!(error = %e, "could not leave the node table; the others will expel this node");
        }
    }
    Ok(())
}

/// The HTTPS server's TLS settings: the certificate chain and key from PEM files, HTTP/2 and
/// HTTP/1.1 by ALPN, and session resumption both ways a client may ask for it (stateless tickets
/// from a rotating ticket key, and a session cache), so a returning client skips the full handshake.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS key {}", key.display()))?;
    let mut provider = rustls::crypto::ring::default_provider();
    // The same suites, but those hashing with SHA-256 before those with SHA-384, chosen in this
    // order rather than the client's: a handshake runs a dozen HKDF steps of its suite's hash, and
    // SHA-256 has CPU instructions of its own where SHA-384 does not, so a new connection costs
    // less (clients such as OpenSSL list AES-256-GCM-SHA384 first). AES-128-GCM is TLS 1.3's
    // mandatory suite and as safe for this use.
    provider.cipher_suites.sort_by_key(|suite| {
        let common = match suite {
            rustls::SupportedCipherSuite::Tls13(suite) => &suite.common,
            rustls::SupportedCipherSuite::Tls12(suite) => &suite.common,
        };
        (
            suite.version() != &rustls::version::TLS13,
            common.hash_provider.algorithm() != rustls::crypto::hash::HashAlgorithm::SHA256,
        )
    });
    let provider = Arc::new(provider);
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the TLS configuration")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("loading the TLS certificate and key")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tls.ignore_client_order = true;
    // One ticket per handshake, as OpenSSL sends on a resumed one: each resumed connection gets a
    // fresh ticket for the next, and a second costs every new connection its encryption and
    // write (about 8% of a resumed handshake's CPU here). A client opening several connections at
    // once after its first resumes one of them; the others make full handshakes.
    tls.send_tls13_tickets = 1;
    tls.ticketer = rustls::crypto::ring::Ticketer::new().context("the TLS ticket key")?;
    tls.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
    Ok(Arc::new(tls))
}

/// Periodic work off the request path: catching the key index up with the change feed (a safety net:
/// writers catch it up before answering; with other nodes writing, [`spawn_follower`] does this
/// instead), writing last-use times, forgetting old throttle windows, and summing up the refusals
/// the log left out.
/// Fills the index, joins the other nodes (under a lease), and only then opens the index to checks
/// and follows other nodes' changes: a node that is not yet a member must not acknowledge changes
/// it has not loaded. A failed step is tried again after a second; meanwhile checks go on reading
/// the store.
async fn load_index(
    dataplane: Arc<dataplane::DataPlane>,
    notices: Option<Box<dyn rekey_store::ChangeListener>>,
    config: Config,
) {
    let index = &dataplane.index;
    let retry = std::time::Duration::from_secs(1);
    while let Err(e) = index.fill().await {
        tracing::error!(error = %e, "could not load the key index; trying again");
        tokio::time::sleep(retry).await;
    }
    if let Some(membership) = &dataplane.membership {
        while let Err(e) = membership.join(index).await {
            tracing::error!(error = %e, "could not join the other nodes; trying again");
            tokio::time::sleep(retry).await;
        }
    }
    index.open();
    tracing::info!(keys = index.len(), "key index loaded");
    give_back_freed_memory();
    if let Some(notices) = notices {
        spawn_follower(notices, dataplane.clone(), &config);
    }
}

/// Returns the heap's free memory to the system: the load read every resource, a page at a time,
/// and glibc keeps what it freed in its arenas, resident (at a million resources, tens of MB).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and shrinks the allocator's own arenas; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn spawn_background(
    store: Arc<dyn Store>,
    dataplane: Arc<dataplane::DataPlane>,
    events: Arc<events::Events>,
    config: &Config,
    followed: bool,
) {
    dataplane::usage::spawn_flusher(
        dataplane.clone(),
        store,
        events,
        std::time::Duration::from_millis(config.usage_flush_ms),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut summarized = std::time::Instant::now();
        loop {
            tick.tick().await;
            if summarized.elapsed() >= dataplane::refusal_log::SUMMARY_EVERY {
                summarized = std::time::Instant::now();
                dataplane.refusal_log.summarize();
            }
            if !followed {
                if let Err(e) = dataplane.index.catch_up().await {
                    tracing::warn!(error = %e, "the key index could not catch up");
                }
            }
            dataplane.throttle.prune();
        }
    });
}

/// With other nodes writing: catches the index up on every change notice, and re-reads the feed
/// position regularly whether or not notices came, so a lost notice is caught. Under a lease
/// ([`dataplane::membership`]) each catch-up after a notice is acknowledged at once, and every
/// [`dataplane::membership::RENEW_EVERY`] the lease is renewed (after a catch-up) and nodes that
/// stopped renewing are expelled. Under a positive staleness bound the feed is re-read every quarter
/// of the bound (10 to 250 ms), so the index keeps confirming it is current. Failures are logged
/// when they start and when they end, not on every attempt.
fn spawn_follower(
    mut listener: Box<dyn rekey_store::ChangeListener>,
    dataplane: Arc<dataplane::DataPlane>,
    config: &Config,
) {
    let follower = dataplane.clone();
    tokio::spawn(async move {
        let mut listening = true;
        loop {
            match listener.next().await {
                Ok(notice) => {
                    if !listening {
                        tracing::info!("listening for changes again");
                        listening = true;
                    }
                    let behind = match notice {
                        ChangeNotice::Committed(seq) => seq > follower.index.applied(),
                        ChangeNotice::Resumed => true,
                        ChangeNotice::Acknowledged => false,
                    };
                    if behind {
                        if let Err(e) = follower.index.catch_up().await {
                            tracing::debug!(error = %e, "catching up on a change notice failed");
                        }
                    }
                    if let Some(membership) = &follower.membership {
                        if matches!(notice, ChangeNotice::Acknowledged | ChangeNotice::Resumed) {
                            membership.heard_acknowledgement();
                        }
                        // A write elsewhere waits for this acknowledgement.
                        if follower.index.applied() > membership.acknowledged() {
                            let acknowledged = tokio::time::timeout(
                                dataplane::membership::TRUSTED_FOR,
                                membership.renew(&follower.index),
                            )
                            .await;
                            if !matches!(acknowledged, Ok(Ok(()))) {
                                tracing::debug!("acknowledging a change failed");
                            }
                        }
                    }
                }
                Err(e) => {
                    if listening {
                        tracing::warn!(error = %e, "lost the change notice connection; retrying");
                        listening = false;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    let every = match (&dataplane.membership, config.max_staleness_ms) {
        (Some(_), _) => dataplane::membership::RENEW_EVERY,
        (None, bound) => (std::time::Duration::from_millis(bound) / 4).clamp(
            std::time::Duration::from_millis(10),
            std::time::Duration::from_millis(250),
        ),
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut current = true;
        loop {
            tick.tick().await;
            // Bounded, so a hung database shows up as a failure rather than a stall; under a lease
            // no longer than the lease, which a renewal answered later could not extend anyway.
            let patience = match &dataplane.membership {
                Some(_) => dataplane::membership::TRUSTED_FOR,
                None => std::time::Duration::from_secs(2),
            };
            let attempt = tokio::time::timeout(patience, async {
                dataplane.index.catch_up().await?;
                if let Some(membership) = &dataplane.membership {
                    membership.renew(&dataplane.index).await?;
                    membership.expel_silent().await?;
                    // Changes no check or write here waited for: once every node has them,
                    // checks stop asking about them.
                    if let Some(position) = dataplane.index.latest_unsettled() {
                        if membership.acked_by_all(position).await? {
                            dataplane.index.settle(position);
                        }
                    }
                }
                Ok::<_, rekey_store::StoreError>(())
            })
            .await;
            match attempt {
                Ok(Ok(())) if !current => {
                    tracing::info!("the key index is current again");
                    current = true;
                }
                Ok(Ok(())) => {}
                Ok(Err(e)) if current => {
                    tracing::warn!(error = %e, "the key index cannot confirm it is current");
                    current = false;
                }
                Err(_) if current => {
                    tracing::warn!(
                        "the key index cannot confirm it is current: the database does not answer"
                    );
                    current = false;
                }
                _ => {}
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, HandshakeKind, ProtocolVersion, SignatureScheme};

    /// Checks the handshake's signatures but trusts any certificate: the test's certificate is
    /// self-signed, and what is under test is resumption, not the chain.
    #[derive(Debug)]
    struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algs = &self.0.signature_verification_algorithms;
            rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algs = &self.0.signature_verification_algorithms;
            rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// The server's TLS settings from a fresh self-signed ECDSA P-256 certificate.
    fn server_config(dir: &std::path::Path) -> Arc<rustls::ServerConfig> {
        let out = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-keyout", "server.key", "-out", "server.pem"])
            .args(["-subj", "/CN=localhost", "-days", "2"])
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tls_config(&dir.join("server.pem"), &dir.join("server.key")).expect("the TLS settings")
    }

    /// One client that keeps what the server gives it for resumption, offering `version` only.
    fn client_config(
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .expect("the client's TLS settings")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        client.resumption = rustls::client::Resumption::in_memory_sessions(16);
        Arc::new(client)
    }

    /// Moves what `from` has to send into `to`, which processes it; whether there was anything.
    fn transfer<A, B>(
        from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<A>>,
        to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<B>>,
    ) -> bool {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes).expect("one side writes");
        }
        let mut unread = &bytes[..];
        while !unread.is_empty() {
            to.read_tls(&mut unread).expect("the other side reads");
            to.process_new_packets()
                .expect("the other side accepts the messages");
        }
        !bytes.is_empty()
    }

    /// A whole handshake in memory (and the session ticket after it); what kind the server made.
    fn handshake(
        client: &Arc<rustls::ClientConfig>,
        server: &Arc<rustls::ServerConfig>,
    ) -> (HandshakeKind, ProtocolVersion) {
        let name = ServerName::try_from("localhost").expect("a server name");
        let mut c = rustls::ClientConnection::new(client.clone(), name).expect("a client");
        let mut s = rustls::ServerConnection::new(server.clone()).expect("a server");
        for _ in 0..10 {
            let to_server = transfer(&mut c, &mut s);
            let to_client = transfer(&mut s, &mut c);
            if !to_server && !to_client {
                break;
            }
        }
        assert!(
            !c.is_handshaking() && !s.is_handshaking(),
            "the handshake finished"
        );
        (
            s.handshake_kind().expect("a handshake kind"),
            s.protocol_version().expect("a protocol version"),
        )
    }

    #[test]
    fn a_returning_client_resumes_its_session_without_a_full_handshake() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let server = server_config(dir.path());
        for (version, expected) in [
            (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
            (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        ] {
            let client = client_config(version);
            assert_eq!(handshake(&client, &server), (HandshakeKind::Full, expected));
            // Each resumed connection is given what the next one resumes with.
            for _ in 0..3 {
                assert_eq!(
                    handshake(&client, &server),
                    (HandshakeKind::Resumed, expected)
                );
            }
        }
    }
}
