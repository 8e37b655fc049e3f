//! End to end: the three families as external transaction-processor
//! processes (`coldchain tp registry|custody|sensor`) connected over ZeroMQ to
//! a `coldchain node` that runs no families itself, processing the full
//! scenario: register, lots, shipments, readings with an excursion, hand-offs,
//! refusing compromised goods, dispensing, recall, emergency blood.
mod support;

use support::Families;

#[test]
fn the_full_scenario_runs_through_external_tp_processes() {
    support::scenario::run(Families::ExternalProcesses);
}
