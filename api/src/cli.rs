//! The commands of the `varsel` binary.

use crate::auth::{self, TokenKind};
use crate::config::{Config, LogFormat};
use crate::startup::{Application, openapi_json};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// varsel: a self-hostable notification-order service on durable Temporal workflows.
#[derive(Parser)]
#[command(name = "varsel", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the worker as configured by VARSEL_* (production).
    Serve,
    /// Run only the worker.
    Worker,
    /// Run only the API.
    Api,
    /// Run only the inbound SMTP listener for bounces and complaint reports (VARSEL_BOUNCE_LISTEN).
    Bounces,
    /// The embedded stack: Temporal dev server, SQLite, API and worker, demo data.
    Dev {
        /// API port.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Data folder.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Temporal frontend port (web UI on this + 1000).
        #[arg(long, default_value_t = 7233)]
        temporal_port: u16,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document the server serves.
    Openapi,
    /// Replay orders' workflow histories against this build's workflow code.
    ///
    /// Reports per order whether it replays cleanly or where the code diverges. Exit status 1
    /// when any order does not replay. Temporal is `TEMPORAL_ADDRESS`.
    Replay {
        /// Order ids.
        order_ids: Vec<String>,
        /// Replay the orders whose workflow failed, timed out or was terminated.
        #[arg(long)]
        failed: bool,
        /// Replay every order started since this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// At most this many orders from --failed/--since.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Print an order's timeline: its workflow history in words, merged with its notifications.
    History {
        /// The order id.
        order_id: String,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Load the embedded contact register from CSV or NDJSON files, or write it out.
    Contacts {
        #[command(subcommand)]
        command: crate::register::ContactsCommand,
    },
    /// Send again the notifications of a completed order that failed before reaching a provider.
    Redrive {
        /// The order id.
        order_id: String,
    },
    /// Print a bearer token: signed with the first of VARSEL_AUTH_HMAC_SECRETS when set (every
    /// API host of the deployment accepts it; its issuer is `varsel-dev`, which
    /// VARSEL_AUTH_ISSUERS must then list if it lists any), else with the dev key of the data dir.
    Token {
        /// Creator org.
        #[arg(long)]
        org: String,
        /// Scopes (space-separated).
        #[arg(long, default_value = auth::CREATE_SCOPE)]
        scope: String,
        /// Mint a PlatformAccessToken (issued by --org, signed with that issuer's dev key)
        /// instead of a bearer token.
        #[arg(long)]
        platform: bool,
        /// The app a PlatformAccessToken is issued to (its `urn:altinn:app` claim).
        #[arg(long, default_value = "varsel-cli")]
        app: String,
        /// Data folder holding the dev signing key.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: i64,
    },
}

/// Logs go to stderr, filtered by `VARSEL_LOG` (an `EnvFilter`), as text or, with
/// `VARSEL_LOG_FORMAT=json`, one JSON object per line with the span fields (order and
/// notification ids) flattened in.
pub fn init_tracing(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VARSEL_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},temporalio_sdk_core=warn,temporalio_sdk=warn,temporalio_common=warn,sqlx=warn"))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == LogFormat::Json {
        builder.json().flatten_event(true).with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Takes over SIGTERM (what `docker stop` and Kubernetes send) and SIGINT (Ctrl-C) at once, so
/// that one arriving while the process starts is not fatal; the future resolves at the first,
/// and a second ends the process at once.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down gracefully; a second signal stops at once");
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!("second signal: stopping at once");
            std::process::exit(130);
        });
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve | Command::Worker | Command::Api | Command::Bounces => {
            let signalled = shutdown_signal()?;
            let mut cfg = Config::load()?;
            // The command names the role; `serve` takes it from the configuration.
            match cli.command {
                Command::Worker => {
                    (cfg.run_api, cfg.run_worker, cfg.run_bounces) = (false, true, false)
                }
                Command::Api => {
                    (cfg.run_api, cfg.run_worker, cfg.run_bounces) = (true, false, false)
                }
                Command::Bounces => {
                    (cfg.run_api, cfg.run_worker, cfg.run_bounces) = (false, false, true);
                    anyhow::ensure!(
                        !cfg.email.bounce_listen.is_empty(),
                        "varsel bounces needs VARSEL_BOUNCE_LISTEN (and VARSEL_EMAIL_BOUNCE_DOMAIN)"
                    );
                }
                _ => {}
            }
            let api = cfg.run_api;
            let app = Application::build(cfg).await?;
            if api {
                tracing::info!(url = app.base_url(), "API listening");
            }
            app.run_until(signalled).await
        }
        Command::Dev { port, data_dir, temporal_port } => {
            let signalled = shutdown_signal()?;
            crate::dev::run(crate::dev::DevOptions { port, data_dir, temporal_port }, signalled)
                .await
        }
        Command::Migrate => {
            let cfg = Config::load()?;
            let store = varsel_activities::Store::connect(&cfg.database.url, 2).await?;
            store.migrate().await?;
            println!("migrated {}", crate::config::redact_url(&cfg.database.url));
            Ok(())
        }
        Command::Replay { order_ids, failed, since, limit } => {
            let cfg = Config::load()?;
            let client = crate::temporal::connect(&cfg).await?;
            let since = since.map(|s| parse_since(&s)).transpose()?;
            let mut ids = order_ids;
            if failed || since.is_some() {
                ids.extend(crate::replay::find_orders(&client, failed, since, limit).await?);
            }
            if ids.is_empty() {
                anyhow::bail!("name order ids, or use --failed / --since");
            }
            let mut bad = 0;
            for (id, verdict) in crate::replay::replay_orders(&client, &ids).await? {
                match verdict {
                    crate::replay::ReplayVerdict::Clean { events, runs } => {
                        let size = crate::replay::ReplayVerdict::size(events, runs);
                        println!("ok      {id}  replays cleanly ({size})")
                    }
                    crate::replay::ReplayVerdict::Nondeterministic(e) => {
                        bad += 1;
                        println!("DIVERGE {id}  {e}");
                    }
                    crate::replay::ReplayVerdict::Unavailable(e) => {
                        bad += 1;
                        println!("MISSING {id}  {e}");
                    }
                }
            }
            if bad > 0 {
                anyhow::bail!("{bad} of {} orders did not replay", ids.len());
            }
            Ok(())
        }
        Command::History { order_id, json } => {
            let cfg = Config::load()?;
            let store = varsel_activities::Store::connect(&cfg.database.url, 2).await?;
            store.order(&order_id).await?.ok_or_else(|| {
                let db = crate::config::redact_url(&cfg.database.url);
                anyhow::anyhow!("no order {order_id} in {db}")
            })?;
            let client = crate::temporal::connect(&cfg).await?;
            let timeline = crate::timeline::order_timeline(&store, &client, &order_id).await?;
            let entries = timeline.entries;
            if json {
                for e in entries {
                    println!(
                        "{}",
                        serde_json::json!({"time": e.time.to_rfc3339(), "source": e.source, "text": e.text, "notificationId": e.notification_id})
                    );
                }
            } else {
                println!(
                    "order {order_id}\nTemporal web UI: {}\n",
                    cfg.temporal_ui_link(&order_id)
                );
                if timeline.workflow_history_expired {
                    println!(
                        "The workflow's history has expired (Temporal's retention period has \
                         passed): shown is what varsel's database kept.\n"
                    );
                }
                for e in entries {
                    println!(
                        "{}  {:<12}  {}",
                        e.time.format("%Y-%m-%d %H:%M:%S%.3f"),
                        e.source,
                        e.text
                    );
                }
            }
            Ok(())
        }
        Command::Contacts { command } => {
            let cfg = Config::load()?;
            let store = varsel_activities::Store::connect(&cfg.database.url, 2).await?;
            store.migrate().await?;
            crate::register::run(&store, command).await
        }
        Command::Redrive { order_id } => {
            let cfg = std::sync::Arc::new(Config::load()?);
            let store = varsel_activities::Store::connect(&cfg.database.url, 2).await?;
            let dispatcher = crate::temporal::Dispatcher::new(cfg, store.clone());
            let n = dispatcher
                .redrive(&order_id)
                .await
                .map_err(|e| anyhow::anyhow!("redrive refused: {e}"))?;
            // Who: the user running the command on this machine.
            let user = std::env::var("USER").unwrap_or_else(|_| "(unknown user)".into());
            let detail = format!("{n} notifications to send again");
            let actor = format!("{user} with varsel redrive");
            crate::timeline::record_action(&store, &order_id, &actor, "redrive", Some(detail))
                .await;
            println!(
                "redrive of {order_id} started: {n} notifications will be sent again (see `varsel history {order_id}`)"
            );
            Ok(())
        }
        Command::Openapi => {
            println!("{}", openapi_json());
            Ok(())
        }
        Command::Token { org, scope, platform, app, data_dir, ttl } => {
            let token = if platform {
                // The issuer's own key in the dev key set: derived from the dev platform secret.
                let secret = auth::load_or_create_dev_platform_secret(&data_dir)?;
                auth::mint(
                    &auth::derived_platform_key(&secret, &org),
                    TokenKind::Platform { org, app },
                    ttl,
                )?
            } else {
                // A deployment's configured secret, so that every API host accepts the token;
                // else the dev key of the data dir.
                let key = match auth::configured_hmac_key(&Config::load()?)? {
                    Some(key) => key,
                    None => auth::load_or_create_dev_key(&data_dir)?,
                };
                auth::mint(&key, TokenKind::Bearer { org, scope }, ttl)?
            };
            println!("{token}");
            Ok(())
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A broken configuration is reported by the command that loads it; logging falls back to text.
    init_tracing(Config::load().map(|c| c.log_format).unwrap_or_default(), "info");
    for name in Config::unknown_variables() {
        tracing::warn!(
            variable = name,
            "{name} names no configuration key and is ignored (a typo? every key is in docs/configuration.md)"
        );
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_since(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("--since takes RFC 3339 or YYYY-MM-DD, not {s:?}"))?;
    Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}
