//! Keys and signed Sawtooth transactions and batches, built exactly as the
//! official SDKs build them: the header is serialised, hashed with SHA-256 and
//! signed with secp256k1; the signature is the 64-byte compact form in hex and
//! doubles as the transaction (batch) id.
//!
//! Pure computation: no I/O besides reading a key file the caller names.
use protobuf::Message;
use rand::RngCore;
use sawtooth_sdk::messages::batch::{Batch, BatchHeader, BatchList};
use sawtooth_sdk::messages::transaction::{Transaction, TransactionHeader};
use secp256k1::{ecdsa::Signature, All, Message as Digest32, PublicKey, Secp256k1, SecretKey};
use sha2::{Digest, Sha256, Sha512};
use std::sync::OnceLock;

/// Why a key or signature could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("private key is not 64 hex characters of a valid secp256k1 key: {0}")]
    BadPrivateKey(String),
    #[error("public key is not a valid compressed secp256k1 key in hex: {0}")]
    BadPublicKey(String),
    #[error("signature is not 128 hex characters of a compact secp256k1 signature: {0}")]
    BadSignature(String),
    #[error("could not read key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("could not serialise a protobuf message: {0}")]
    Encode(String),
}

fn context() -> &'static Secp256k1<All> {
    static CONTEXT: OnceLock<Secp256k1<All>> = OnceLock::new();
    CONTEXT.get_or_init(Secp256k1::new)
}

/// A secp256k1 private key with its public key, Sawtooth-style.
#[derive(Clone)]
pub struct Signer {
    secret: SecretKey,
    public_hex: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.public_hex)
    }
}

impl Signer {
    /// A new random key.
    pub fn generate() -> Signer {
        let mut bytes = [0u8; 32];
        loop {
            rand::thread_rng().fill_bytes(&mut bytes);
            if let Ok(secret) = SecretKey::from_slice(&bytes) {
                return Signer::from_secret(secret);
            }
        }
    }

    fn from_secret(secret: SecretKey) -> Signer {
        let public = PublicKey::from_secret_key(context(), &secret);
        Signer {
            secret,
            public_hex: hex::encode(public.serialize()),
        }
    }

    /// From Sawtooth's private-key format: 64 hex characters (whitespace around is ignored).
    pub fn from_hex(private_hex: &str) -> Result<Signer, SigningError> {
        let trimmed = private_hex.trim();
        let bytes = hex::decode(trimmed).map_err(|e| SigningError::BadPrivateKey(e.to_string()))?;
        let secret = SecretKey::from_slice(&bytes)
            .map_err(|e| SigningError::BadPrivateKey(e.to_string()))?;
        Ok(Signer::from_secret(secret))
    }

    /// Reads a Sawtooth `.priv` key file.
    pub fn from_file(path: &std::path::Path) -> Result<Signer, SigningError> {
        let text = std::fs::read_to_string(path).map_err(|source| SigningError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        Signer::from_hex(&text)
    }

    /// The private key as 64 hex characters (the content of a `.priv` file).
    pub fn private_hex(&self) -> String {
        hex::encode(&self.secret[..])
    }

    /// The compressed public key as 66 hex characters.
    pub fn public_key(&self) -> &str {
        &self.public_hex
    }

    /// Signs `message` (SHA-256, then secp256k1); 128 hex characters.
    pub fn sign(&self, message: &[u8]) -> String {
        let digest = Sha256::digest(message);
        let msg = Digest32::from_slice(&digest).expect("a SHA-256 digest is 32 bytes");
        let signature = context().sign_ecdsa(&msg, &self.secret);
        hex::encode(signature.serialize_compact())
    }
}

/// Checks a Sawtooth signature (`signature_hex` over `message` by `public_key_hex`).
pub fn verify(
    public_key_hex: &str,
    message: &[u8],
    signature_hex: &str,
) -> Result<bool, SigningError> {
    let key_bytes =
        hex::decode(public_key_hex).map_err(|e| SigningError::BadPublicKey(e.to_string()))?;
    let public =
        PublicKey::from_slice(&key_bytes).map_err(|e| SigningError::BadPublicKey(e.to_string()))?;
    let sig_bytes =
        hex::decode(signature_hex).map_err(|e| SigningError::BadSignature(e.to_string()))?;
    let signature = Signature::from_compact(&sig_bytes)
        .map_err(|e| SigningError::BadSignature(e.to_string()))?;
    let digest = Sha256::digest(message);
    let msg = Digest32::from_slice(&digest).expect("a SHA-256 digest is 32 bytes");
    Ok(context().verify_ecdsa(&msg, &signature, &public).is_ok())
}

/// What a transaction is about: family, the addresses it may read and write, its payload.
#[derive(Clone, Debug)]
pub struct TransactionSpec {
    pub family_name: String,
    pub family_version: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub dependencies: Vec<String>,
    pub payload: Vec<u8>,
}

/// Builds and signs a transaction; `batcher` is the key that will sign its batch.
pub fn sign_transaction(
    spec: TransactionSpec,
    signer: &Signer,
    batcher_public_key: &str,
) -> Result<Transaction, SigningError> {
    let mut nonce = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut header = TransactionHeader::new();
    header.set_family_name(spec.family_name);
    header.set_family_version(spec.family_version);
    header.set_inputs(spec.inputs.into());
    header.set_outputs(spec.outputs.into());
    header.set_dependencies(spec.dependencies.into());
    header.set_nonce(hex::encode(nonce));
    header.set_payload_sha512(hex::encode(Sha512::digest(&spec.payload)));
    header.set_signer_public_key(signer.public_key().to_string());
    header.set_batcher_public_key(batcher_public_key.to_string());
    let header_bytes = header
        .write_to_bytes()
        .map_err(|e| SigningError::Encode(e.to_string()))?;
    let mut transaction = Transaction::new();
    transaction.set_header_signature(signer.sign(&header_bytes));
    transaction.set_header(header_bytes);
    transaction.set_payload(spec.payload);
    Ok(transaction)
}

/// Wraps transactions in a batch signed by `batcher`.
pub fn sign_batch(transactions: Vec<Transaction>, batcher: &Signer) -> Result<Batch, SigningError> {
    let mut header = BatchHeader::new();
    header.set_signer_public_key(batcher.public_key().to_string());
    header.set_transaction_ids(
        transactions
            .iter()
            .map(|t| t.get_header_signature().to_string())
            .collect::<Vec<_>>()
            .into(),
    );
    let header_bytes = header
        .write_to_bytes()
        .map_err(|e| SigningError::Encode(e.to_string()))?;
    let mut batch = Batch::new();
    batch.set_header_signature(batcher.sign(&header_bytes));
    batch.set_header(header_bytes);
    batch.set_transactions(transactions.into());
    Ok(batch)
}

/// Serialises batches as the `application/octet-stream` body of `POST /batches`.
pub fn batch_list_bytes(batches: Vec<Batch>) -> Result<Vec<u8>, SigningError> {
    let mut list = BatchList::new();
    list.set_batches(batches.into());
    list.write_to_bytes()
        .map_err(|e| SigningError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_and_tamper_fails() {
        let signer = Signer::generate();
        let sig = signer.sign(b"hello");
        assert!(verify(signer.public_key(), b"hello", &sig).unwrap());
        assert!(!verify(signer.public_key(), b"hellp", &sig).unwrap());
    }

    #[test]
    fn private_key_round_trips_through_hex() {
        let signer = Signer::generate();
        let again = Signer::from_hex(&format!("{}\n", signer.private_hex())).unwrap();
        assert_eq!(signer.public_key(), again.public_key());
        assert_eq!(signer.public_key().len(), 66);
    }

    #[test]
    fn bad_private_key_is_a_clear_error() {
        assert!(matches!(
            Signer::from_hex("zz"),
            Err(SigningError::BadPrivateKey(_))
        ));
    }
}
