//! The spool carriers: NNCP (`nncp-exec`) and Filespooler (`fspl`),
//! Debian's programs called as programs, never linked (both are GPL).
//! A job counts as carried only when the program exits 0 having taken
//! all of it: the packet is then queued and synced in the spool.

use crate::relay::carrier::{CarrierError, Job, Spool};
use futures_util::future::BoxFuture;
use std::path::{Path, PathBuf};

/// Where Debian installs the NNCP tools; the handle's environment has no
/// PATH, and ours may not either.
pub const NNCP_EXEC: &str = "/usr/bin/nncp-exec";
/// Where Debian installs Filespooler.
pub const FSPL: &str = "/usr/bin/fspl";

/// Debian's path if the program is there, else its name on PATH.
fn program(debian: &'static str, name: &'static str) -> &'static str {
    if Path::new(debian).exists() {
        debian
    } else {
        name
    }
}

/// Runs a tool with `input` on stdin and returns its stdout. A tool that
/// fails — whether before reading all its input or after — is reported
/// by its exit status and message, not by the broken pipe that it leaves
/// behind. `what` names the call in that report; `install` says where the
/// program comes from.
pub async fn run_tool(
    mut cmd: tokio::process::Command,
    program: &str,
    install: &str,
    what: &str,
    input: &[u8],
) -> Result<Vec<u8>, CarrierError> {
    use tokio::io::AsyncWriteExt;
    let io = |source| CarrierError {
        path: program.to_string(),
        source,
    };
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| CarrierError {
            path: format!("{program} ({install})"),
            source,
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let write = async move {
        let written = stdin.write_all(input).await;
        drop(stdin);
        written
    };
    let (written, out) = tokio::join!(write, child.wait_with_output());
    let out = out.map_err(io)?;
    if !out.status.success() {
        return Err(io(std::io::Error::other(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))));
    }
    // Exit 0 without taking the whole input: nothing says it was kept.
    written.map_err(io)?;
    Ok(out.stdout)
}

/// An NNCP node, through `nncp-exec NODE HANDLE ARGS… < body`.
pub struct Nncp {
    pub node: String,
    /// The NNCP configuration (default: the system's).
    pub cfg: Option<PathBuf>,
}

impl Spool for Nncp {
    fn queue<'a>(&'a self, job: Job<'a>) -> BoxFuture<'a, Result<(), CarrierError>> {
        Box::pin(async move {
            let program = program(NNCP_EXEC, "nncp-exec");
            let mut cmd = tokio::process::Command::new(program);
            cmd.arg("-quiet").arg("-noprogress");
            if let Some(cfg) = &self.cfg {
                cmd.arg("-cfg").arg(cfg);
            }
            cmd.arg(&self.node).arg(job.handle).args(job.args);
            run_tool(
                cmd,
                program,
                "install Debian's `nncp` package",
                &format!("nncp-exec {} {}", self.node, job.handle),
                job.body,
            )
            .await?;
            Ok(())
        })
    }
}

/// A Filespooler queue: each job is prepared with the next number of the
/// sequence file (made if missing) and written into the queue's `jobs/`.
/// The receiver runs a fixed command, so handles and arguments are not
/// carried.
pub struct Fspl {
    pub queue: PathBuf,
    pub seqfile: PathBuf,
}

/// Runs `fspl ARGS` with `input` on stdin; its stdout.
async fn fspl(args: &[&std::ffi::OsStr], input: &[u8]) -> Result<Vec<u8>, CarrierError> {
    let program = program(FSPL, "fspl");
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    run_tool(
        cmd,
        program,
        "install Debian's `filespooler` package",
        &format!("fspl {}", shown.join(" ")),
        input,
    )
    .await
}

impl Spool for Fspl {
    fn queue<'a>(&'a self, job: Job<'a>) -> BoxFuture<'a, Result<(), CarrierError>> {
        Box::pin(async move {
            if let Some(dir) = self.seqfile.parent() {
                std::fs::create_dir_all(dir).map_err(|source| CarrierError {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let packet = fspl(
                &[
                    "prepare".as_ref(),
                    "-s".as_ref(),
                    self.seqfile.as_os_str(),
                    "-i".as_ref(),
                    "-".as_ref(),
                ],
                job.body,
            )
            .await?;
            fspl(
                &[
                    "queue-write".as_ref(),
                    "-q".as_ref(),
                    self.queue.as_os_str(),
                ],
                &packet,
            )
            .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tool_that_quits_before_reading_is_reported_by_its_own_words() {
        // 4 MiB cannot fit in a pipe: the write meets the closed end.
        let input = vec![b'x'; 4 << 20];
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "echo unknown node >&2; exit 3"]);
        let e = run_tool(cmd, "sh", "a shell", "sh quit", &input)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sh quit failed") && e.contains("unknown node"),
            "{e}"
        );

        // A tool that takes its input and answers while reading.
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "cat"]);
        let out = run_tool(cmd, "sh", "a shell", "cat", &input).await.unwrap();
        assert_eq!(out.len(), input.len());

        // Exit 0 without reading everything is not success.
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "exit 0"]);
        let e = run_tool(cmd, "sh", "a shell", "exit", &input)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("Broken pipe"), "{e}");
    }
}
