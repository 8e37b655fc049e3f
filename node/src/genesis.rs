//! Genesis: the initial on-chain settings (from a TOML file) and the node's
//! signing key.
//!
//! The settings are written as Sawtooth `Setting` records at the settings
//! family's addresses, exactly where a Sawtooth network's settings TP keeps
//! them, so families read `coldchain.admins` the same way on both. This
//! module only computes; the node persists block 0.
use std::collections::BTreeMap;
use std::path::Path;

use coldchain_processors::addressing::setting_address;
use coldchain_processors::signing::Signer;
use coldchain_processors::state::encode_setting;

use crate::store::LeafChange;

/// The `previous_block_id` of a genesis block, as Sawtooth writes it.
pub const NULL_BLOCK_ID: &str = "0000000000000000";

/// Why genesis or the node key could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("genesis file {path} is not valid: {detail}. Expected a [settings] table of \"key\" = \"value\" strings, e.g. \"coldchain.admins\" = \"02ab…\"")]
    Invalid { path: String, detail: String },
    #[error("genesis file {path}: coldchain.admins entry {entry:?} is not a public key: {why}. Each comma-separated entry must be a 66-hex compressed secp256k1 public key starting 02 or 03 (the .pub file `coldchain keygen <name>` writes); otherwise no one could administer the chain")]
    Admin {
        path: String,
        entry: String,
        why: &'static str,
    },
    #[error("node key: {0}")]
    Key(String),
}

/// The setting naming the keys that may onboard organisations.
pub const ADMINS_SETTING: &str = "coldchain.admins";

/// Why `entry` is not a compressed secp256k1 public key in hex, if it is not.
fn admin_key_problem(entry: &str) -> Option<&'static str> {
    if entry.is_empty() {
        Some("it is empty (a stray comma?)")
    } else if !entry.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some("it holds characters that are not hex digits")
    } else if entry.len() != 66 {
        Some("it is not 66 hex characters long")
    } else if !(entry.starts_with("02") || entry.starts_with("03")) {
        Some("it does not start with 02 or 03")
    } else {
        None
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GenesisFile {
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
}

/// The initial settings, key → value, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenesisSettings(pub BTreeMap<String, String>);

impl GenesisSettings {
    /// Parses the TOML text of a genesis file; `path` is only for messages.
    pub fn parse(text: &str, path: &str) -> Result<GenesisSettings, GenesisError> {
        let invalid = |detail: String| GenesisError::Invalid {
            path: path.to_string(),
            detail,
        };
        let file: GenesisFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut settings = BTreeMap::new();
        for (key, value) in file.settings {
            if key.trim().is_empty() {
                return Err(invalid("a setting has an empty key".into()));
            }
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => Ok(s.clone()),
                        other => Err(invalid(format!(
                            "setting {key}: list item {other} is not a string"
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                other => return Err(invalid(format!("setting {key} = {other} is not a string"))),
            };
            if key == ADMINS_SETTING {
                for entry in value.split(',').map(str::trim) {
                    if let Some(why) = admin_key_problem(entry) {
                        return Err(GenesisError::Admin {
                            path: path.to_string(),
                            entry: entry.to_string(),
                            why,
                        });
                    }
                }
            }
            settings.insert(key, value);
        }
        Ok(GenesisSettings(settings))
    }

    /// Reads and parses a genesis file.
    pub fn load(path: &Path) -> Result<GenesisSettings, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|e| GenesisError::Read {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        GenesisSettings::parse(&text, &path.display().to_string())
    }

    /// The state leaves of these settings. Settings whose keys share an
    /// address (possible only beyond four dot-parts) share one record, as the
    /// Sawtooth settings family does.
    pub fn leaves(&self) -> Result<Vec<LeafChange>, GenesisError> {
        let mut by_address: BTreeMap<String, Vec<(&String, &String)>> = BTreeMap::new();
        for (key, value) in &self.0 {
            by_address
                .entry(setting_address(key))
                .or_default()
                .push((key, value));
        }
        let mut leaves = Vec::new();
        for (address, entries) in by_address {
            let bytes = if entries.len() == 1 {
                encode_setting(entries[0].0, entries[0].1)
                    .map_err(|e| GenesisError::Key(format!("cannot encode setting: {e}")))?
            } else {
                encode_many(&entries)?
            };
            leaves.push((address, Some(bytes)));
        }
        Ok(leaves)
    }
}

fn encode_many(entries: &[(&String, &String)]) -> Result<Vec<u8>, GenesisError> {
    use protobuf::Message;
    use sawtooth_sdk::messages::setting::{Setting, Setting_Entry};
    let mut setting = Setting::new();
    for (key, value) in entries {
        let mut entry = Setting_Entry::new();
        entry.set_key(key.to_string());
        entry.set_value(value.to_string());
        setting.mut_entries().push(entry);
    }
    setting
        .write_to_bytes()
        .map_err(|e| GenesisError::Key(format!("cannot encode setting: {e}")))
}

/// Loads the node key from `path`, or creates a new one there (mode 0600)
/// when the file does not exist.
pub fn load_or_create_key(path: &Path) -> Result<Signer, GenesisError> {
    if path.exists() {
        return Signer::from_file(path).map_err(|e| {
            GenesisError::Key(format!(
                "{e}. The file must hold a Sawtooth private key (64 hex characters); delete it to let the node generate one"
            ))
        });
    }
    let signer = Signer::generate();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| GenesisError::Key(format!("cannot create {}: {e}", parent.display())))?;
    }
    write_private(path, &signer.private_hex())
        .map_err(|e| GenesisError::Key(format!("cannot write {}: {e}", path.display())))?;
    Ok(signer)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, format!("{text}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "02a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const KEY_B: &str = "03a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn settings_table_becomes_setting_records_at_settings_addresses() {
        let settings = GenesisSettings::parse(
            &format!("[settings]\n\"coldchain.admins\" = \"{KEY_A},{KEY_B}\"\n\"sawtooth.consensus.algorithm.name\" = \"Devmode\"\n"),
            "test.toml",
        )
        .unwrap();
        let leaves = settings.leaves().unwrap();
        assert_eq!(leaves.len(), 2);
        let admins = leaves
            .iter()
            .find(|(a, _)| *a == setting_address("coldchain.admins"))
            .unwrap();
        let ctx = coldchain_processors::memory_context::MemoryContext::new();
        ctx.put(&admins.0, admins.1.clone().unwrap());
        assert_eq!(
            coldchain_processors::state::setting_list(&ctx, "coldchain.admins").unwrap(),
            vec![KEY_A.to_string(), KEY_B.to_string()]
        );
    }

    #[test]
    fn list_values_are_joined_with_commas() {
        let settings = GenesisSettings::parse(
            &format!("[settings]\n\"coldchain.admins\" = [\"{KEY_A}\", \"{KEY_B}\"]\n"),
            "g",
        )
        .unwrap();
        assert_eq!(settings.0["coldchain.admins"], format!("{KEY_A},{KEY_B}"));
    }

    #[test]
    fn admins_that_are_not_public_keys_are_refused_by_name() {
        for (admins, needle) in [
            ("02a1…(66-hex public key)", "not hex digits"),
            ("02ab", "66 hex characters"),
            (&format!("04{}", &KEY_A[2..]), "02 or 03"),
            (&format!("{KEY_A},"), "empty"),
            (&format!("{KEY_A}, 02ab"), "\"02ab\""),
        ] {
            let error = GenesisSettings::parse(
                &format!("[settings]\n\"coldchain.admins\" = \"{admins}\"\n"),
                "genesis.toml",
            )
            .unwrap_err()
            .to_string();
            assert!(error.contains(needle), "{admins}: {error}");
            assert!(error.contains("genesis.toml"), "{error}");
        }
    }

    #[test]
    fn unknown_tables_and_non_string_values_are_refused() {
        assert!(GenesisSettings::parse("[setting]\nx = \"1\"\n", "g").is_err());
        assert!(GenesisSettings::parse("[settings]\nx = { a = 1 }\n", "g").is_err());
    }

    #[test]
    fn missing_key_file_is_created_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("validator.priv");
        let first = load_or_create_key(&path).unwrap();
        let second = load_or_create_key(&path).unwrap();
        assert_eq!(first.public_key(), second.public_key());
    }
}
