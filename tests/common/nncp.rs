//! Two or more local NNCP nodes (Debian's `nncp`) for carrier tests: each
//! with its own keys, spool and config; packets carried through a "USB
//! stick" directory with nncp-xfer and tossed with nncp-toss (which runs
//! the exec handles).
#![allow(dead_code)]

use super::RunAs;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

pub fn nncp_tools() {
    super::debian_tool("/usr/bin/nncp-exec", "nncp");
}

/// Run `args` as `who`; panics with the output unless it succeeds.
pub fn run(who: &RunAs, args: &[&str], what: &str) -> Output {
    let o = who
        .command(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {}: {e}", args[0]));
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// One NNCP node: its keys (from nncp-cfgnew) and its directory.
pub struct NncpNode {
    pub dir: PathBuf,
    keys: HashMap<String, String>,
}

impl NncpNode {
    pub fn new(dir: PathBuf) -> NncpNode {
        std::fs::create_dir_all(dir.join("spool")).unwrap();
        let o = run(
            &RunAs::current(),
            &["/usr/bin/nncp-cfgnew", "-nocomments"],
            "nncp-cfgnew",
        );
        let text = String::from_utf8(o.stdout).unwrap();
        // The `self:` block holds every key as `name: value`.
        let block = &text[text.find("self:").unwrap()..text.find("neigh:").unwrap()];
        let keys = block
            .lines()
            .filter_map(|l| l.trim().split_once(": "))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        NncpNode { dir, keys }
    }
    /// The node id (what NNCP_SENDER says on the other side).
    pub fn id(&self) -> &str {
        &self.keys["id"]
    }
    pub fn cfg(&self) -> PathBuf {
        self.dir.join("nncp.hjson")
    }
    pub fn cfg_str(&self) -> String {
        self.cfg().to_str().unwrap().to_string()
    }
    fn public(&self) -> String {
        ["id", "exchpub", "signpub", "noisepub"]
            .iter()
            .map(|k| format!("{k}: \"{}\"", self.keys[*k]))
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// Write the config: `peer` (called `peer_name` here) is the other
    /// node, and what it sends to handle `h` runs `argv`, for each
    /// `(h, argv)` of `exec`.
    pub fn write(&self, peer_name: &str, peer: &NncpNode, exec: &[(&str, Vec<String>)]) {
        let private = [
            "id", "exchpub", "exchprv", "signpub", "signprv", "noiseprv", "noisepub",
        ]
        .iter()
        .map(|k| format!("{k}: \"{}\"", self.keys[*k]))
        .collect::<Vec<_>>()
        .join(", ");
        let handles = exec
            .iter()
            .map(|(h, argv)| format!("\"{h}\": {}", serde_json::to_string(argv).unwrap()))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "{{ spool: \"{spool}\", log: \"{log}\", noprogress: true,\n  self: {{ {private} }},\n  neigh: {{\n    self: {{ {me} }},\n    {peer_name}: {{ {them}, exec: {{ {handles} }} }}\n  }}\n}}\n",
            spool = self.dir.join("spool").display(),
            log = self.dir.join("log").display(),
            me = self.public(),
            them = peer.public(),
        );
        std::fs::write(self.cfg(), text).unwrap();
    }
}

/// Move everything `from` has queued for `to` through a directory, then
/// let `to` toss it (which runs the exec handles), all as `who`.
pub fn carry(who: &RunAs, from: &NncpNode, to: &NncpNode, stick: &Path) {
    std::fs::create_dir_all(stick).unwrap();
    who.own(stick);
    let (f, t) = (from.cfg_str(), to.cfg_str());
    let stick = stick.to_str().unwrap();
    run(
        who,
        &[
            "/usr/bin/nncp-xfer",
            "-cfg",
            &f,
            "-quiet",
            "-mkdir",
            "-tx",
            stick,
        ],
        "nncp-xfer -tx",
    );
    run(
        who,
        &["/usr/bin/nncp-xfer", "-cfg", &t, "-quiet", "-rx", stick],
        "nncp-xfer -rx",
    );
    run(
        who,
        &["/usr/bin/nncp-toss", "-cfg", &t, "-quiet", "-seen"],
        "nncp-toss",
    );
}
