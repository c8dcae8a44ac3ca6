//! The bridge to Temporal, a file a job: the client connection and workflow policy (here), the
//! dispatcher that starts order workflows as a transactional outbox (`dispatcher`), what the
//! API asks of a running workflow (`control`: redrive, cancel, signals), the worker thread and
//! its SDK metrics (`worker`), housekeeping that runs beside the API (`housekeeping`), and the
//! outbox that wakes each webhook pair's workflow (`webhooks`).

mod control;
mod dispatcher;
mod housekeeping;
pub mod queues;
mod webhooks;
mod worker;

pub use control::{RedriveRefusal, SignalEvents};
pub use dispatcher::Dispatcher;
pub use housekeeping::prune_status_feed;
pub use worker::{SdkMetrics, WorkerHandle, spawn_worker};

use crate::config::{Config, TemporalConfig};
use std::time::Duration;
use temporalio_client::envconfig::LoadClientConfigProfileOptions;
use temporalio_client::errors::ClientConnectError;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions};
use temporalio_common::envconfig::load_client_config_profile;
use varsel_workflows::WorkflowPolicy;

/// How the Temporal connection is made, as the Temporal CLI and SDKs make it: the SDK's
/// environment configuration reads `TEMPORAL_API_KEY`, `TEMPORAL_TLS` and `TEMPORAL_TLS_*`
/// (CA, server name, client certificate and key), `TEMPORAL_GRPC_META_*`, and a profile of the
/// Temporal config file (`TEMPORAL_CONFIG_FILE`, `TEMPORAL_PROFILE`). The address and namespace
/// are varsel's (`TEMPORAL_ADDRESS`, `VARSEL_TEMPORAL_ADDRESS` or the file key) unless only the
/// profile names them. With TLS, the address is `https://`. Returns the options and the
/// namespace; a bad setting (a missing file, a certificate without its key) is an error naming it.
pub fn connection_options(cfg: &Config) -> anyhow::Result<(ConnectionOptions, String)> {
    let mut profile = load_client_config_profile(LoadClientConfigProfileOptions::default(), None)
        .map_err(|e| {
        anyhow::anyhow!(
            "Temporal client configuration (TEMPORAL_* variables, TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE): {e}"
        )
    })?;
    let tls = match &profile.tls {
        Some(t) => t.disabled != Some(true),
        None => profile.api_key.is_some(),
    };
    let defaults = TemporalConfig::default();
    let address = match profile.address.take() {
        Some(a) if cfg.temporal.address == defaults.address => a,
        _ => cfg.temporal.address.clone(),
    };
    // A bare host:port was given `http://` when the configuration was read; TLS needs https.
    let address = match address.strip_prefix("http://") {
        Some(rest) if tls => format!("https://{rest}"),
        _ => address,
    };
    let namespace = match profile.namespace.take() {
        Some(n) if cfg.temporal.namespace == defaults.namespace => n,
        _ => cfg.temporal.namespace.clone(),
    };
    profile.address = Some(address);
    profile.namespace = Some(namespace.clone());
    let mut opts = ConnectionOptions::try_from(profile)
        .map_err(|e| anyhow::anyhow!("Temporal client configuration: {e}"))?;
    opts.connect_timeout = Some(Duration::from_secs(5));
    Ok((opts, namespace))
}

/// Connects a Temporal client (see [`connection_options`]). Bounded: an unreachable or silent
/// server is an error within seconds, never a hang.
pub async fn connect(cfg: &Config) -> anyhow::Result<Client> {
    let (opts, namespace) = connection_options(cfg)?;
    let target = opts.target.to_string();
    let secured = opts.tls_options.is_some();
    let connection = tokio::time::timeout(Duration::from_secs(10), Connection::connect(opts))
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to Temporal at {target}"))?
        .map_err(|e| connect_error(e, &target, secured))?;
    Ok(Client::new(connection, ClientOptions::new(namespace).build())?)
}

/// A [`Connection::connect`] failure as an operator reads it: [`NotServingYet`] when Temporal
/// itself answered that it is not serving yet, else what failed with a hint at the TLS settings
/// of a secured connection.
fn connect_error(e: ClientConnectError, target: &str, secured: bool) -> anyhow::Error {
    // Temporal itself answered that it is not serving yet (a server starting): no
    // transport error beneath the status, unlike a TLS or network failure.
    if let ClientConnectError::SystemInfoCallError(status) = &e
        && status.code() == tonic::Code::Unavailable
        && std::error::Error::source(status).is_none()
    {
        return anyhow::Error::new(NotServingYet(format!(
            "Temporal at {target} is not serving yet: {}",
            status.message()
        )));
    }
    let hint = if secured {
        "; check TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (or TEMPORAL_API_KEY)"
    } else {
        ""
    };
    anyhow::anyhow!("cannot connect to Temporal at {target}: {e:?}{hint}")
}

/// One round trip to Temporal (its system information): whether the connection still works.
pub async fn ping(client: &Client) -> anyhow::Result<()> {
    use temporalio_common::protos::temporal::api::workflowservice::v1::GetSystemInfoRequest;
    let mut service = client.connection().workflow_service();
    service.get_system_info(tonic::Request::new(GetSystemInfoRequest::default())).await?;
    Ok(())
}

/// Temporal answered, but is not serving yet (its frontend is starting).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotServingYet(String);

/// Whether a [`connect`] error says only that Temporal is not there (yet): nothing listens, the
/// name does not resolve, no answer in time, or it answers that it is not serving yet. Anything else (a TLS failure, a refused
/// certificate or key, something that is not Temporal) is a misconfiguration.
pub fn unreachable(e: &anyhow::Error) -> bool {
    if e.downcast_ref::<NotServingYet>().is_some() {
        return true;
    }
    let text = format!("{e:#}");
    ["Connection refused", "ConnectionRefused", "dns error", "DnsResolution", "timed out"]
        .iter()
        .any(|s| text.contains(s))
}

/// The workflow tunables derived from configuration.
pub fn policy(cfg: &Config) -> WorkflowPolicy {
    WorkflowPolicy {
        generate_batch: cfg.processing.generate_batch,
        send_batch: cfg.processing.send_batch,
        condition_attempts: cfg.conditions.attempts,
        condition_retry_ms: cfg.conditions.retry_ms,
        max_retry_interval_ms: cfg.processing.max_retry_interval_ms,
        max_batches_per_run: cfg.processing.max_batches_per_run,
        send_window: cfg.processing.send_window,
        // Validated at start-up (Application::build).
        sms_window: cfg.sms_window().ok().flatten(),
    }
}

#[cfg(test)]
mod connect_tests {
    use super::*;

    #[test]
    fn a_starting_server_is_not_reachable_yet_but_a_refusal_is_a_misconfiguration() {
        let starting = ClientConnectError::SystemInfoCallError(tonic::Status::unavailable(
            "Frontend is not healthy yet",
        ));
        let e = connect_error(starting, "http://127.0.0.1:7233/", false);
        assert!(unreachable(&e), "{e:#}");
        let refused = ClientConnectError::SystemInfoCallError(tonic::Status::permission_denied(
            "Request unauthorized.",
        ));
        let e = connect_error(refused, "https://temporal.example:7233/", true);
        assert!(!unreachable(&e), "{e:#}");
        assert!(format!("{e:#}").contains("check TEMPORAL_TLS_SERVER_CA_CERT_PATH"), "{e:#}");
    }
}
