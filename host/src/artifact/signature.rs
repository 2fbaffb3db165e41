//! Ed25519 signatures over plugin digests.
//!
//! A publisher signs the 32 raw bytes of the plugin's sha256 digest; the signature
//! travels as base64 (the registry's `plugin-signature` property, or a `.sig` file beside
//! a plugin in the plugin directory). A host configured with the publisher's public key
//! loads only plugins whose signature verifies over the digest of the bytes it holds.
//!
//! Keys are accepted in the formats `openssl` writes (`genpkey -algorithm ed25519`:
//! PKCS#8 PEM private key, SPKI PEM public key) or as base64 of the raw 32 bytes, which
//! is what `predict-host keygen` prints for the public key so it fits in one env var.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("unsigned: a plugin signing key is configured and this plugin carries no signature")]
    Missing,
    #[error("signature is not base64 of a 64-byte ed25519 signature")]
    Malformed,
    #[error("signature does not verify with the configured public key over sha256:{0}")]
    Invalid(String),
    #[error("not an ed25519 key ({0}): expected PEM or base64 of the raw 32 bytes")]
    BadKey(String),
}

/// The public key plugins must be signed with (`PLUGIN_PUBLIC_KEY`).
#[derive(Debug, Clone)]
pub struct PluginKey(VerifyingKey);

impl PluginKey {
    /// Parses an SPKI PEM public key, or base64 of the raw 32-byte key.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return VerifyingKey::from_public_key_pem(text)
                .map(Self)
                .map_err(|e| SignatureError::BadKey(e.to_string()));
        }
        let raw: [u8; 32] =
            decode_exact(text).ok_or_else(|| SignatureError::BadKey("wrong length".into()))?;
        VerifyingKey::from_bytes(&raw).map(Self).map_err(|e| SignatureError::BadKey(e.to_string()))
    }

    /// Checks `signature` (base64) over the digest whose hex form is `sha256`.
    pub fn verify(&self, sha256: &str, signature: Option<&str>) -> Result<(), SignatureError> {
        let signature = signature.ok_or(SignatureError::Missing)?;
        let raw: [u8; 64] = decode_exact(signature).ok_or(SignatureError::Malformed)?;
        let digest = hex::decode(sha256).map_err(|_| SignatureError::Invalid(sha256.to_string()))?;
        self.0
            .verify(&digest, &Signature::from_bytes(&raw))
            .map_err(|_| SignatureError::Invalid(sha256.to_string()))
    }

    /// Base64 of the raw key, the form `PLUGIN_PUBLIC_KEY` takes.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.as_bytes())
    }
}

/// A publisher's private key (`publish --sign-key`).
pub struct PluginSigner(SigningKey);

impl PluginSigner {
    /// Parses a PKCS#8 PEM private key, or base64 of the raw 32-byte seed.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return SigningKey::from_pkcs8_pem(text)
                .map(Self)
                .map_err(|e| SignatureError::BadKey(e.to_string()));
        }
        let seed: [u8; 32] =
            decode_exact(text).ok_or_else(|| SignatureError::BadKey("wrong length".into()))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut seed);
        Self(SigningKey::from_bytes(&seed))
    }

    /// Base64 signature over the digest whose hex form is `sha256`.
    pub fn sign(&self, sha256: &str) -> String {
        let digest = hex::decode(sha256).expect("sha256 digests are hex");
        BASE64.encode(self.0.sign(&digest).to_bytes())
    }

    pub fn public_key(&self) -> PluginKey {
        PluginKey(self.0.verifying_key())
    }

    /// The private key as PKCS#8 PEM, the form `openssl genpkey` writes.
    pub fn to_pem(&self) -> String {
        self.0.to_pkcs8_pem(LineEnding::LF).expect("an ed25519 key encodes").to_string()
    }
}

fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    BASE64.decode(text.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_signature_verifies_only_over_its_digest_and_key() {
        let signer = PluginSigner::generate();
        let key = PluginKey::parse(&signer.public_key().to_base64()).unwrap();
        let signature = signer.sign(DIGEST);
        key.verify(DIGEST, Some(&signature)).unwrap();

        let other_digest = DIGEST.replace('9', "8");
        assert!(matches!(key.verify(&other_digest, Some(&signature)), Err(SignatureError::Invalid(_))));
        let stranger = PluginKey::parse(&PluginSigner::generate().public_key().to_base64()).unwrap();
        assert!(matches!(stranger.verify(DIGEST, Some(&signature)), Err(SignatureError::Invalid(_))));
        assert!(matches!(key.verify(DIGEST, None), Err(SignatureError::Missing)));
        assert!(matches!(key.verify(DIGEST, Some("not base64!")), Err(SignatureError::Malformed)));
    }

    #[test]
    fn pem_keys_round_trip() {
        let signer = PluginSigner::generate();
        let again = PluginSigner::parse(&signer.to_pem()).unwrap();
        let key = again.public_key();
        key.verify(DIGEST, Some(&signer.sign(DIGEST))).unwrap();
        assert!(PluginKey::parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err());
    }
}
