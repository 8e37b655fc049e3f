//! Key files in Sawtooth's format: `<name>.priv` holds 64 hex characters of a
//! secp256k1 private key, `<name>.pub` the 66-hex compressed public key.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use coldchain_processors::signing::Signer;

/// `$COLDCHAIN_KEY_DIR`, else `~/.coldchain/keys`.
pub fn key_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("COLDCHAIN_KEY_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var("HOME").context("HOME is not set; pass --key-dir")?;
    Ok(PathBuf::from(home).join(".coldchain").join("keys"))
}

/// The key used when `--key` is not given: `<key dir>/default.priv`.
pub fn default_key_path() -> Result<PathBuf> {
    Ok(key_dir()?.join("default.priv"))
}

/// Writes a new key pair; refuses to overwrite unless `force`.
pub fn generate(dir: &Path, name: &str, force: bool) -> Result<(PathBuf, Signer)> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("key name {name:?} may use only letters, digits, '-' and '_'");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let private = dir.join(format!("{name}.priv"));
    if private.exists() && !force {
        bail!(
            "{} already exists; pass --force to replace it",
            private.display()
        );
    }
    let signer = Signer::generate();
    write(dir, name, &signer)?;
    Ok((private, signer))
}

/// Writes `signer` as `<dir>/<name>.priv` (mode 0600) and `<dir>/<name>.pub`,
/// replacing files of that name; returns the private key's path.
pub fn write(dir: &Path, name: &str, signer: &Signer) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let private = dir.join(format!("{name}.priv"));
    let public = dir.join(format!("{name}.pub"));
    write_private(&private, signer)?;
    std::fs::write(&public, format!("{}\n", signer.public_key()))
        .with_context(|| format!("cannot write {}", public.display()))?;
    Ok(private)
}

fn write_private(path: &Path, signer: &Signer) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{}", signer.private_hex())
        .with_context(|| format!("cannot write {}", path.display()))
}
