//! A real Postfix (Debian's package) as a test's relay: an instance of its own, configured in a
//! temp dir, listening on loopback, sending every domain to the port the test names, generating
//! its own delivery status notifications with short timers (a delay notice after one second,
//! giving up after `lifetime`). `scripts/bootstrap --test-tools` installs it; the instance needs
//! root (Postfix's master drops privileges to the `postfix` user).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A running Postfix instance; stopped when dropped.
pub struct Postfix {
    /// Its SMTP port on 127.0.0.1.
    pub port: u16,
    config: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Postfix {
    /// Starts Postfix on `port`, relaying each domain of `routes` to `127.0.0.1:<port>` and
    /// giving up on a message it could not deliver after `lifetime`.
    pub fn start(port: u16, routes: &[(&str, u16)], lifetime: Duration) -> Self {
        assert!(
            Path::new("/usr/sbin/postfix").exists(),
            "Postfix is missing: run ./scripts/bootstrap --test-tools"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        // Postfix's daemons run as `postfix`: they must reach the queue below the temp dir.
        chmod(dir.path(), 0o755);
        let config = dir.path().join("etc");
        let data = dir.path().join("data");
        let log = dir.path().join("maillog");
        for d in [&config, &data, &dir.path().join("queue")] {
            std::fs::create_dir(d).expect("postfix dir");
        }
        let status = Command::new("chown").arg("postfix").arg(&data).status().expect("chown");
        assert!(status.success(), "chown postfix {}", data.display());
        let transport = routes
            .iter()
            .map(|(domain, port)| format!("{domain}=smtp:[127.0.0.1]:{port}"))
            .collect::<Vec<_>>()
            .join(", ");
        let root = dir.path().display();
        let lifetime = format!("{}s", lifetime.as_secs().max(1));
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {root}/queue\n\
             data_directory = {root}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = relay.varsel.test\n\
             mydomain = varsel.test\n\
             mydestination =\n\
             local_recipient_maps =\n\
             alias_maps =\n\
             alias_database =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             smtpd_relay_restrictions = permit_mynetworks, reject\n\
             transport_maps = inline:{{ {transport} }}\n\
             smtp_dns_support_level = disabled\n\
             maillog_file_prefixes = {root}\n\
             maillog_file = {log}\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n\
             delay_warning_time = 1s\n\
             maximal_queue_lifetime = {lifetime}\n\
             bounce_queue_lifetime = {lifetime}\n\
             biff = no\n\
             smtputf8_enable = no\n",
            log = log.display(),
        );
        std::fs::write(config.join("main.cf"), main_cf).expect("main.cf");
        let services = [
            format!("127.0.0.1:{port} inet n - n - - smtpd"),
            "pickup unix n - n 60 1 pickup".into(),
            "cleanup unix n - n - 0 cleanup".into(),
            "qmgr unix n - n 300 1 qmgr".into(),
            "rewrite unix - - n - - trivial-rewrite".into(),
            "bounce unix - - n - 0 bounce".into(),
            "defer unix - - n - 0 bounce".into(),
            "trace unix - - n - 0 bounce".into(),
            "verify unix - - n - 1 verify".into(),
            "flush unix n - n 1000? 0 flush".into(),
            "proxymap unix - - n - - proxymap".into(),
            "smtp unix - - n - - smtp".into(),
            "relay unix - - n - - smtp".into(),
            "showq unix n - n - - showq".into(),
            "error unix - - n - - error".into(),
            "retry unix - - n - - error".into(),
            "discard unix - - n - - discard".into(),
            "anvil unix - - n - 1 anvil".into(),
            "scache unix - - n - 1 scache".into(),
            "postlog unix-dgram n - n - 1 postlogd".into(),
        ];
        std::fs::write(config.join("master.cf"), services.join("\n") + "\n").expect("master.cf");
        let postfix = Self { port, config, log, _dir: dir };
        let out = postfix.command("start");
        assert!(out.status.success(), "postfix start failed: {}", postfix.maillog());
        crate::wait_listening(port, Duration::from_secs(20), || {
            format!("Postfix did not listen: {}", postfix.maillog())
        });
        postfix
    }

    fn command(&self, verb: &str) -> std::process::Output {
        Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&self.config)
            .arg(verb)
            .output()
            .expect("run postfix")
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Its log so far (what it received, relayed, deferred and bounced).
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.command("abort");
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
