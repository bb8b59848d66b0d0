//! `cairn radio sim`: simulated LoRa modems on pseudo-terminals.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum RadioCommand {
    /// Simulate LoRa modems without hardware: RNode or RYLR998 emulators
    /// on pseudo-terminals joined by one simulated channel (air time,
    /// half duplex, collisions, loss). Each radio appears as DIR/NAME; set
    /// a hub's `radio.port` to it. Runs until interrupted; on standard
    /// input it takes `unplug NAME`, `plug NAME`, `loss P`, `stats`.
    Sim {
        /// Where the radios' device links go.
        #[arg(long, default_value = "cairn-radio-sim")]
        dir: PathBuf,
        /// Which modems: rnode or rylr.
        #[arg(long, default_value = "rnode")]
        modem: String,
        /// Names of the radios.
        #[arg(long, value_delimiter = ',', default_value = "a,b")]
        radios: Vec<String>,
        /// Share of frames lost, 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Share of frames corrupted past the radio's CRC, 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        corrupt: f64,
        /// Seed of the channel's randomness (runs are repeatable).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// `cairn radio sim`: emulated modems on pseudo-terminals until Ctrl-C.
pub(super) async fn radio_sim(
    dir: &std::path::Path,
    modem: &str,
    radios: &[String],
    loss: f64,
    corrupt: f64,
    seed: u64,
) -> Result<()> {
    use crate::carriers::lora::modem::Model;
    use crate::carriers::lora::sim::{Sim, ether::Conditions};
    use tokio::io::AsyncBufReadExt;
    let model: Model = modem.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    for (what, p) in [("--loss", loss), ("--corrupt", corrupt)] {
        if !(0.0..=1.0).contains(&p) {
            bail!("{what} {p} is not a share: give a number from 0 to 1");
        }
    }
    if radios.is_empty() || radios.iter().any(|r| r.is_empty() || r.contains('/')) {
        bail!("--radios takes names such as a,b (no slashes)");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("finding {}", dir.display()))?;
    let conditions = Conditions {
        loss,
        corrupt,
        ..Conditions::default()
    };
    let sim = Sim::new(seed, conditions);
    for name in radios {
        sim.add(name, model);
        let link = dir.join(name);
        sim.open_pty(name, &link)
            .with_context(|| format!("making the pseudo-terminal for {name}"))?;
        println!("radio {name}: {} ({modem})", link.display());
    }
    println!(
        "set each hub's radio.port to one of these, with radio.modem = \"{modem}\"; Ctrl-C stops"
    );
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            line = lines.next_line(), if stdin_open => {
                let Ok(Some(line)) = line else { stdin_open = false; continue };
                let words: Vec<&str> = line.split_whitespace().collect();
                let reply = match words.as_slice() {
                    ["unplug", name] => { sim.unplug(name); format!("{name} unplugged") }
                    ["plug", name] => match sim.plug(name) {
                        Ok(()) => format!("{name} plugged in"),
                        Err(e) => format!("{name}: {e}"),
                    },
                    ["loss", p] => match p.parse::<f64>() {
                        Ok(p) if (0.0..=1.0).contains(&p) => {
                            let mut c = sim.ether().conditions();
                            c.loss = p;
                            sim.ether().set(c);
                            format!("loss {p}")
                        }
                        _ => "loss takes a share from 0 to 1".into(),
                    },
                    ["stats"] => format!("{:?}", sim.ether().stats()),
                    [] => continue,
                    _ => "commands: unplug NAME, plug NAME, loss P, stats".into(),
                };
                println!("{reply}");
            }
        }
    }
    for name in radios {
        sim.unplug(name);
        // The device links point at pseudo-terminals that close now: no
        // dangling links are left for a hub to open.
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
            let _ = std::fs::remove_file(&link);
        }
    }
    println!("{:?}", sim.ether().stats());
    Ok(())
}
