//! HS256, the only algorithm tokens use, computed by ring for jsonwebtoken.
//!
//! jsonwebtoken's `rust_crypto` backend brings RSA, ECDSA and EdDSA code this
//! function never runs (7.4 % of the zip, `make pieces`) and HMACs with the portable
//! `sha2` crate. jsonwebtoken accepts a
//! process-wide `CryptoProvider` instead: this one signs and verifies HS256 with
//! ring (the verification in constant time) and refuses every other algorithm.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use ring::hmac;

/// One HS256 key, for signing or verifying.
struct Hs256(hmac::Key);

impl Hs256 {
    fn new(algorithm: &Algorithm, family: AlgorithmFamily, secret: &[u8]) -> Result<Self> {
        if *algorithm != Algorithm::HS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        if family != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }
}

impl signature::Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.0, message).as_ref().to_vec())
    }
}

impl signature::Verifier<Vec<u8>> for Hs256 {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), signature::Error> {
        hmac::verify(&self.0, message, signature).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(Hs256::new(
        algorithm,
        key.family(),
        key.as_bytes(),
    )?))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let secret = key.try_get_as_bytes()?;
    Ok(Box::new(Hs256::new(algorithm, key.family(), secret)?))
}

/// HS256 through ring; no JWK support (no key here is ever a JWK).
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes ring's HS256 jsonwebtoken's provider for this process; every `Tokens` is
/// built through this, so no token is handled before it. Idempotent.
pub fn install() {
    // Err: already installed, by an earlier call (the only installer).
    let _ = PROVIDER.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_matches_rfc_4231_and_other_algorithms_are_refused() {
        // GIVEN RFC 4231's test case 2 (key "Jefe")
        let key = EncodingKey::from_secret(b"Jefe").unwrap();
        let signer = signer(&Algorithm::HS256, &key).unwrap();
        // WHEN signed THEN the RFC's HMAC-SHA-256
        let mac = signer.try_sign(b"what do ya want for nothing?").unwrap();
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // AND it verifies, and a changed message does not
        let decoding = DecodingKey::from_secret(b"Jefe").unwrap();
        let verifier = verifier(&Algorithm::HS256, &decoding).unwrap();
        assert!(
            verifier
                .verify(b"what do ya want for nothing?", &mac)
                .is_ok()
        );
        assert!(
            verifier
                .verify(b"what do ya want for nothing!", &mac)
                .is_err()
        );
        // AND no other algorithm is served
        for algorithm in [
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ] {
            assert!(signer_for(algorithm).is_err(), "{algorithm:?}");
            assert!(
                super::verifier(&algorithm, &decoding).is_err(),
                "{algorithm:?}"
            );
        }
    }

    fn signer_for(algorithm: Algorithm) -> Result<Box<dyn JwtSigner>> {
        signer(&algorithm, &EncodingKey::from_secret(b"Jefe").unwrap())
    }
}
