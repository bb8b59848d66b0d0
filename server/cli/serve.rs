//! `cairn serve` and `cairn check-config`: running the hub, and what it
//! prints when ready.

use super::*;

pub(super) fn check_config(cli: &Cli, file: &std::path::Path) -> Result<()> {
    let overrides = Overrides {
        data_dir: cli.data.clone(),
        profile: cli.profile.clone(),
    };
    match Config::load(Some(file), &process_env(), &overrides) {
        Ok(c) => {
            println!(
                "{}: ok (profile {}, data in {}, domains {})",
                file.display(),
                c.profile.as_str(),
                c.data_dir.display(),
                c.hub
                    .domains
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Err(e) => {
            let n = e.problems.len();
            bail!(
                "{e}\n{}: {n} problem{} found",
                file.display(),
                if n == 1 { "" } else { "s" }
            )
        }
    }
}

pub(super) async fn serve(mut config: Config) -> Result<()> {
    let mut signals: Option<Signals> = None;
    loop {
        let hub = Hub::start(config.clone()).await?;
        // Handlers are in place before "ready" is printed: a signal right
        // after it must stop the hub cleanly, not kill it.
        let signals = match &mut signals {
            Some(s) => s,
            None => signals.insert(Signals::install()?),
        };
        print_ready(&hub)?;
        let stop = hub.stop_token();
        let reload = hub.reload_requested();
        tokio::select! {
            _ = signals.wait() => {
                stop.cancel();
                hub.run().await;
                println!("stopped");
                return Ok(());
            }
            _ = reload.cancelled() => {
                // The same ports again, even those port 0 picked.
                config = hub.pinned(&config);
                hub.shutdown().await;
                println!("restarting with the new settings");
            }
        }
    }
}

pub(super) fn print_ready(hub: &Hub) -> Result<()> {
    let r = &hub.report;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "cairn {}: hub \"{}\"",
        env!("CARGO_PKG_VERSION"),
        hub.name
    )?;
    for line in &r.lines {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "certificate SHA-256 fingerprint {}", r.fingerprint)?;
    if let Some(code) = &r.setup_code {
        let setup = hub
            .endpoint(app::WEB_HTTP)
            .map(|a| format!("open http://{a}/setup to choose the admin password with it"))
            .unwrap_or_else(|| "the web setup page asks for it".into());
        writeln!(
            out,
            "admin setup code: {code} (also in {}); {setup}, or run `cairn admin set-password`",
            r.data_dir.join("setup-code.txt").display()
        )?;
    }
    for (name, addr) in &hub.endpoints {
        match *name {
            app::WEB_HTTP => writeln!(out, "{name}: http://{addr}/")?,
            app::WEB_HTTPS => writeln!(out, "{name}: https://{addr}/")?,
            _ => writeln!(out, "{name}: {addr}")?,
        }
    }
    writeln!(out, "ready; stop with Ctrl-C")?;
    out.flush()?;
    Ok(())
}

/// SIGINT and SIGTERM, registered when made.
pub(super) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => tracing::info!("SIGINT: stopping"),
            _ = self.term.recv() => tracing::info!("SIGTERM: stopping"),
        }
    }
}
