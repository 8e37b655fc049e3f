//! End to end: every participant subcommand of `coldchain`, run as a process
//! against a real `coldchain node` process running the families in-process,
//! including refusals and their messages as the transaction processors word them.
mod support;

use std::process::Command;

use support::{keygen, Families, BIN};

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "alice");
    let again = Command::new(BIN)
        .args(["keygen", "alice", "--key-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn the_full_scenario_runs_through_the_cli_with_in_process_families() {
    support::scenario::run(Families::InProcess);
}
