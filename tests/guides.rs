//! The guides run as written. Every ```` ```sh ```` block of the role guides
//! (`docs/guides/*.md`) is run verbatim, in one bash session, in the order
//! of [`GUIDES`], with `set -euo pipefail`: a command that fails (a flag the
//! CLI does not know, a step the ledger refuses) fails this test, naming the
//! guide and the line. ```` ```text ```` blocks are illustrations (a real
//! network's URL, placeholders, long-running commands) and are not run.
//!
//! The conventions the guides follow for that (`docs/guides/README.md`):
//! - the logistics guide's "Trying it on your own machine" block starts the
//!   embedded node at its default address (127.0.0.1:8008, component
//!   127.0.0.1:4004) and defines `K` (the key folder) and `COLDCHAIN_URL`;
//!   the other guides' local blocks go on from there (one node for all);
//! - placeholders are shell variables set in an earlier block, never `<…>`
//!   or `…` inside a `sh` block.
//!
//! The session runs in a network namespace of its own (`unshare --net`, only
//! a loopback interface), so the guides' fixed ports cannot clash with
//! anything else on the machine, with `HOME` in a temporary folder (keys
//! under `~/.coldchain/keys`) and `coldchain` on the `PATH`.
mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::BIN;

/// The guides, in the order their local blocks build on each other.
const GUIDES: [&str; 4] = [
    "docs/guides/logistics-partner.md",
    "docs/guides/pharmacy.md",
    "docs/guides/blood-bank-hospital.md",
    "docs/guides/regulator.md",
];

/// Longest the whole session may take before it is stopped.
const SESSION_LIMIT: Duration = Duration::from_secs(300);

/// The `sh` blocks of a Markdown text as a bash script whose line numbers are
/// the Markdown's (every other line blank), so an error names the guide line.
/// Fails on an unclosed `sh` block.
fn sh_script(markdown: &str) -> Result<String, String> {
    let mut script = String::new();
    let mut open_at = None;
    for (number, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match open_at {
            None if fence.starts_with("```sh") && fence[5..].trim().is_empty() => {
                open_at = Some(number + 1);
                script.push('\n');
            }
            None => script.push('\n'),
            Some(_) if fence.starts_with("```") => {
                open_at = None;
                script.push('\n');
            }
            Some(_) => {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    match open_at {
        Some(line) => Err(format!("the sh block opened on line {line} is not closed")),
        None => Ok(script),
    }
}

/// The session: strict mode, an ERR trap naming the guide line, each guide's
/// script sourced in turn, background jobs (the node) stopped at the end.
fn session(scripts: &[(String, String)]) -> String {
    let mut main = String::from(
        "set -euo pipefail\n\
         trap 'echo \"guide step failed: ${BASH_SOURCE[0]}:${LINENO}: ${BASH_COMMAND}\" >&2' ERR\n\
         trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n",
    );
    for (guide, script_path) in scripts {
        main.push_str(&format!("echo '=== {guide}'\nsource {script_path:?}\n"));
    }
    main.push_str("echo '=== all guides ran'\n");
    main
}

#[test]
fn sh_blocks_keep_their_guide_line_numbers() {
    let markdown = "# t\n```sh\necho one\n```\ntext\n```text\nnot run\n```\n```sh\necho two\n```\n";
    let script = sh_script(markdown).unwrap();
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(lines[2], "echo one");
    assert_eq!(lines[9], "echo two");
    assert!(!script.contains("not run"));
    assert!(sh_script("```sh\necho open\n").is_err());
}

#[test]
fn every_guide_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mut scripts = Vec::new();
    for guide in GUIDES {
        let markdown = std::fs::read_to_string(root.join(guide)).unwrap();
        let script = sh_script(&markdown).unwrap_or_else(|e| panic!("{guide}: {e}"));
        assert!(!script.trim().is_empty(), "{guide} has no sh block");
        let path = dir.path().join(guide);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, script).unwrap();
        scripts.push((guide.to_string(), path.display().to_string()));
    }
    let main = dir.path().join("guides.sh");
    std::fs::write(&main, session(&scripts)).unwrap();

    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = dir.path().join("session.log");
    let mut command = Command::new("unshare");
    command
        .args([
            "--net",
            "--",
            "bash",
            "-c",
            "ip link set lo up && exec bash \"$0\"",
        ])
        .arg(&main)
        .current_dir(&work)
        .env("HOME", &home)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::piped());
    for variable in [
        "COLDCHAIN_URL",
        "COLDCHAIN_KEY",
        "COLDCHAIN_KEY_DIR",
        "COLDCHAIN_COMPONENT",
        "COLDCHAIN_API",
        "COLDCHAIN_LOG",
    ] {
        command.env_remove(variable);
    }
    // Its own process group: on a timeout the node the guides started goes too.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .expect("unshare and bash (util-linux, iproute2) run the guides");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("session status") {
            break Some(status);
        }
        if started.elapsed() > SESSION_LIMIT {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let errors = reader.join().unwrap_or_default();
    let printed = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: String = {
        let lines: Vec<&str> = printed.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let failed_step = errors
        .lines()
        .filter(|l| l.starts_with("guide step failed: "))
        .map(|l| l.replace(&format!("{}/", dir.path().display()), ""))
        .next()
        .unwrap_or_default();
    assert!(
        status.is_some(),
        "the guides did not finish within {SESSION_LIMIT:?}; last output:\n{tail}\n{errors}"
    );
    assert!(
        status.is_some_and(|s| s.success()) && printed.contains("=== all guides ran"),
        "{failed_step}\n--- stdout (last lines)\n{tail}\n--- stderr\n{errors}"
    );
}
