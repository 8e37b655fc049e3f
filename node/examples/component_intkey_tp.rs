//! A small intkey-style transaction processor built only on the official
//! `sawtooth-sdk` `TransactionProcessor`, used to show (and test) that a
//! processor written for a Sawtooth validator works unchanged against the
//! node's component endpoint.
//!
//! Usage: `component_intkey_tp <endpoint> [family]` (default family `intkey`,
//! version 1.0). Payload is UTF-8 text: `set NAME VALUE`, `inc NAME DELTA`,
//! `del NAME` or `refuse REASON` (always invalid). Values are decimal text at
//! `namespace + sha512(NAME)[last 64 hex]`. Every change emits an
//! `intkey/changed` event (attributes `name`, `value`) and receipt data.
//! It is a demonstration processor, not a coldchain family.
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext, TransactionHandler};
use sawtooth_sdk::processor::TransactionProcessor;
use sha2::{Digest, Sha512};

struct Intkey {
    family: String,
    namespace: String,
}

impl Intkey {
    fn new(family: &str) -> Intkey {
        let namespace = hex::encode(Sha512::digest(family.as_bytes()))[..6].to_string();
        Intkey {
            family: family.to_string(),
            namespace,
        }
    }

    fn address(&self, name: &str) -> String {
        let digest = hex::encode(Sha512::digest(name.as_bytes()));
        format!("{}{}", self.namespace, &digest[64..])
    }

    fn read(
        &self,
        context: &dyn TransactionContext,
        name: &str,
    ) -> Result<Option<i64>, ApplyError> {
        let Some(bytes) = context.get_state_entry(&self.address(name))? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| invalid(format!("value of {name} is not UTF-8")))?;
        text.parse()
            .map(Some)
            .map_err(|_| invalid(format!("value of {name} is not a number: {text}")))
    }

    fn write(
        &self,
        context: &dyn TransactionContext,
        name: &str,
        value: i64,
    ) -> Result<(), ApplyError> {
        context.set_state_entry(self.address(name), value.to_string().into_bytes())?;
        context.add_event(
            format!("{}/changed", self.family),
            vec![
                ("name".into(), name.into()),
                ("value".into(), value.to_string()),
            ],
            &[],
        )?;
        context.add_receipt_data(format!("{name}={value}").as_bytes())?;
        Ok(())
    }
}

fn invalid(message: String) -> ApplyError {
    ApplyError::InvalidTransaction(message)
}

fn number(text: Option<&str>, what: &str) -> Result<i64, ApplyError> {
    let text = text.ok_or_else(|| invalid(format!("missing {what}")))?;
    text.parse()
        .map_err(|_| invalid(format!("{what} is not a number: {text}")))
}

impl TransactionHandler for Intkey {
    fn family_name(&self) -> String {
        self.family.clone()
    }

    fn family_versions(&self) -> Vec<String> {
        vec!["1.0".into()]
    }

    fn namespaces(&self) -> Vec<String> {
        vec![self.namespace.clone()]
    }

    fn apply(
        &self,
        request: &TpProcessRequest,
        context: &mut dyn TransactionContext,
    ) -> Result<(), ApplyError> {
        let text = std::str::from_utf8(request.get_payload())
            .map_err(|_| invalid("payload is not UTF-8".into()))?;
        let mut words = text.split_whitespace();
        let verb = words.next().unwrap_or_default();
        let name = words.next().unwrap_or_default();
        match verb {
            "set" => self.write(context, name, number(words.next(), "value")?),
            "inc" => {
                let current = self
                    .read(context, name)?
                    .ok_or_else(|| invalid(format!("{name} is not set")))?;
                let delta = number(words.next(), "delta")?;
                let sum = current
                    .checked_add(delta)
                    .ok_or_else(|| invalid(format!("{name} would overflow")))?;
                self.write(context, name, sum)
            }
            "del" => {
                context.delete_state_entry(&self.address(name))?;
                Ok(())
            }
            "refuse" => Err(invalid(
                text.trim_start_matches("refuse").trim().to_string(),
            )),
            other => Err(invalid(format!(
                "unknown verb {other:?}; use set, inc, del or refuse"
            ))),
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(endpoint) = args.next() else {
        eprintln!("usage: component_intkey_tp <endpoint, e.g. tcp://127.0.0.1:4004> [family]");
        std::process::exit(2);
    };
    let family = args.next().unwrap_or_else(|| "intkey".into());
    let handler = Intkey::new(&family);
    let mut processor = TransactionProcessor::new(&endpoint);
    processor.add_handler(&handler);
    processor.start();
}
