//! `varsel dev`: the embedded stack for a laptop or a demo.

use crate::config::Config;
use crate::devserver::{DevServer, DevServerOptions, find_temporal_bin};
use crate::startup::Application;
use std::path::PathBuf;
use varsel_activities::Store;
use varsel_activities::store::{OrgContact, PersonContact};

/// Seeds the contact register with the persons and organisations of the seed examples, so every
/// example of the documentation works against a fresh `varsel dev`.
pub async fn seed_demo_contacts(store: &Store) -> anyhow::Result<()> {
    let orgs = [
        (
            "311000179",
            "Digitaliseringsdirektoratet Test AS",
            vec!["post@digdir-test.no"],
            vec!["+4740000001"],
        ),
        ("312508729", "Fjordvarsel AS", vec!["kontakt@fjordvarsel.no"], vec![]),
        ("313000001", "Mobilbedriften AS", vec![], vec!["+4790000001"]),
    ];
    for (org_no, name, emails, mobiles) in orgs {
        store
            .upsert_organization(
                org_no,
                &OrgContact {
                    name: Some(name.into()),
                    emails: emails.into_iter().map(String::from).collect(),
                    mobiles: mobiles.into_iter().map(String::from).collect(),
                },
            )
            .await?;
    }
    let persons = [
        (
            "11876995923",
            "Kari Reservert",
            Some("kari.reservert@example.no"),
            Some("+4790000002"),
            true,
        ),
        (
            "16069412345",
            "Ola Nordmann",
            Some("ola.nordmann@example.no"),
            Some("+4790000003"),
            false,
        ),
        ("01017012345", "Per Uten Epost", None, Some("98765432"), false),
        ("02027012345", "Lise Uten Kontakt", None, None, false),
    ];
    for (nin, name, email, mobile, reserved) in persons {
        store
            .upsert_person(
                nin,
                &PersonContact {
                    name: Some(name.into()),
                    email: email.map(String::from),
                    mobile: mobile.map(String::from),
                    reserved,
                    updated_at: Some(chrono::Utc::now()),
                },
            )
            .await?;
    }
    Ok(())
}

/// Options of `varsel dev`.
pub struct DevOptions {
    /// API port.
    pub port: u16,
    /// Data folder.
    pub data_dir: PathBuf,
    /// Temporal frontend port.
    pub temporal_port: u16,
}

/// The embedded stack's configuration: the loaded one, with the data dir, ports and the dev
/// server's addresses of these options.
pub fn dev_config(
    mut cfg: Config,
    opts: &DevOptions,
    data_dir: &std::path::Path,
    temporal_address: &str,
) -> Config {
    cfg.data_dir = data_dir.to_path_buf();
    cfg.database.url = String::new();
    cfg.http.listen = format!("127.0.0.1:{}", opts.port);
    cfg.temporal.address = temporal_address.to_owned();
    // Links to an order's workflow go to the web UI this dev server really serves.
    cfg.temporal.ui_url = format!("http://127.0.0.1:{}", temporal_ui_port(opts.temporal_port));
    cfg.run_api = true;
    cfg.run_worker = true;
    // One local process and no load balancer: Ctrl-C stops accepting at once.
    cfg.shutdown_drain_secs = 0;
    // One host: its token keys and report secret may live in its data dir.
    cfg.auth.allow_data_dir_keys = true;
    cfg.normalise();
    cfg
}

/// The port of the dev server's web UI: the frontend's plus 1000 (8233 for 7233), or the
/// frontend's minus 1000 for a frontend port too high for that.
pub fn temporal_ui_port(frontend: u16) -> u16 {
    frontend.checked_add(1000).unwrap_or(frontend.saturating_sub(1000))
}

/// Runs the embedded stack until `shutdown` resolves (SIGTERM or Ctrl-C), then stops it as
/// `serve` stops: requests and send batches in flight finish, then the Temporal dev server.
pub async fn run(
    opts: DevOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.data_dir)?;
    let data_dir = std::fs::canonicalize(&opts.data_dir)?;
    let bin = find_temporal_bin().ok_or_else(|| {
        anyhow::anyhow!("the Temporal CLI was not found: run ./scripts/bootstrap (installs temporal-bin into .venv) or set VARSEL_TEMPORAL_BIN")
    })?;
    let server_opts = DevServerOptions {
        bin,
        port: opts.temporal_port,
        ui_port: Some(temporal_ui_port(opts.temporal_port)),
        db_file: Some(data_dir.join("temporal.db")),
        log_file: data_dir.join("temporal.log"),
    };
    tracing::info!(port = opts.temporal_port, "starting the Temporal dev server");
    // Started on this (the main) thread on purpose: the server is tied to the thread that
    // spawned it, so it must be one that lives as long as varsel.
    let mut server = DevServer::start(&server_opts)?;

    let cfg = dev_config(Config::load()?, &opts, &data_dir, &server.address);

    let app = Application::build(cfg.clone()).await?;
    let store = Store::connect(&cfg.database.url, 2).await?;
    seed_demo_contacts(&store).await?;
    let key = crate::auth::load_or_create_dev_key(&data_dir)?;
    let token = crate::auth::mint(
        &key,
        crate::auth::TokenKind::Bearer {
            org: "ttd".into(),
            scope: crate::auth::CREATE_SCOPE.into(),
        },
        24 * 3600,
    )?;
    let operator = crate::auth::mint(
        &key,
        crate::auth::TokenKind::Bearer {
            org: "dev-operator".into(),
            scope: crate::auth::OPERATOR_SCOPE.into(),
        },
        24 * 3600,
    )?;
    let console = app.console_link(operator).unwrap_or_default();
    let base = app.base_url().to_owned();
    println!(
        "\nvarsel is running\n  API       {base}/notifications/api/v1\n  docs      {base}/docs\n  console   {console}\n            (a one-time sign-in link for an operator, good for {} minutes)\n  Temporal  {} (web UI http://127.0.0.1:{})\n  data      {}\n  email     {}\n\nTry it (token for org ttd, valid 24 h):\n\ncurl -i {base}/notifications/api/v1/orders/email \\\n  -H 'Content-Type: application/json' \\\n  -H 'Authorization: Bearer {token}' \\\n  -d '{{\"subject\":\"Hello $recipientName$\",\"body\":\"A message from varsel.\",\"recipients\":[{{\"organizationNumber\":\"311000179\"}},{{\"emailAddress\":\"someone@example.no\"}}]}}'\n",
        crate::console::signin::LINK_TTL.as_secs() / 60,
        server.address,
        temporal_ui_port(opts.temporal_port),
        data_dir.display(),
        if cfg.email.smtp_url.is_empty() {
            format!("written to {}", data_dir.join("outbox").display())
        } else {
            crate::config::redact_url(&cfg.email.smtp_url)
        },
    );

    if let Some(addr) = app.bounce_addr() {
        println!(
            "Bounces and complaint reports for {} are taken by SMTP on {addr}.\n",
            cfg.email.bounce_domain
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app_task = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));
    // Supervise the Temporal server until told to stop: restart it if it dies.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {
                if !server.is_running() {
                    tracing::warn!("the Temporal dev server stopped; restarting it");
                    server = DevServer::start(&server_opts)?;
                }
            }
        }
    }
    println!("stopping");
    let _ = stop_tx.send(());
    app_task.await??;
    drop(server);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_go_to_the_web_ui_of_the_port_dev_was_given() {
        let opts = DevOptions { port: 8080, data_dir: "./data".into(), temporal_port: 17233 };
        let cfg = dev_config(
            Config::default(),
            &opts,
            std::path::Path::new("/tmp/d"),
            "http://127.0.0.1:17233",
        );
        assert_eq!(
            cfg.temporal_ui_link("o-1"),
            "http://127.0.0.1:18233/namespaces/default/workflows/o-1"
        );
        assert_eq!(cfg.temporal.address, "http://127.0.0.1:17233");
    }
}
