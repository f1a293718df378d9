//! Key and certificate generation: the issuer's own CA, the serving certificate for
//! 127.0.0.1/localhost signed by it, and RSA-2048 signing keys with their JWK form.

use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::PrivateKey;
use time::{Duration, OffsetDateTime};

use crate::Error;

/// Modulus size of every signing key, in bits.
pub const RSA_BITS: usize = 2048;

/// How long the CA and serving certificates are valid, from an hour before they are made.
const CERT_VALIDITY: Duration = Duration::days(3650);

/// PEM texts of a CA and of a serving certificate it signed, with their private keys.
pub(crate) struct TlsMaterial {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

/// Makes a fresh ECDSA P-256 CA named after `tenant` and a serving certificate for IP
/// 127.0.0.1 and DNS `localhost`, valid for server authentication only.
pub(crate) fn tls_material(tenant: &str) -> Result<TlsMaterial, Error> {
    let now = OffsetDateTime::now_utc();
    let not_before = now - Duration::hours(1);
    let not_after = now + CERT_VALIDITY;

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, format!("kl-token-issuer CA {tenant}"));
    ca.distinguished_name.push(DnType::OrganizationName, "kube-lighthouse local issuers");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_cert_pem = ca_cert.pem();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CommonName, format!("kl-token-issuer {tenant}"));
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    Ok(TlsMaterial { ca_cert: ca_cert_pem, ca_key: ca_key_pem, cert: leaf_cert.pem(), key: leaf_key.serialize_pem() })
}

/// Generates an RSA key of [`RSA_BITS`] bits with public exponent 65537 from the operating
/// system's random number generator.
pub(crate) fn generate_rsa() -> Result<PrivateKey, Error> {
    PrivateKey::new(&mut getrandom::SysRng, RSA_BITS).map_err(|e| Error::Key(e.to_string()))
}

/// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
pub(crate) fn rsa_to_pkcs8_pem(key: &PrivateKey) -> Result<String, Error> {
    Ok(key.to_pkcs8_pem(LineEnding::LF).map_err(|e| Error::Key(e.to_string()))?.to_string())
}

/// Parses a PKCS#8 PEM RSA private key.
pub(crate) fn rsa_from_pkcs8_pem(pem: &str) -> Result<PrivateKey, Error> {
    PrivateKey::from_pkcs8_pem(pem).map_err(|e| Error::Key(e.to_string()))
}

/// The key in the form `jsonwebtoken` signs with (PKCS#1 DER).
pub(crate) fn encoding_key(key: &PrivateKey) -> Result<EncodingKey, Error> {
    let der = key.to_pkcs1_der().map_err(|e| Error::Key(e.to_string()))?;
    Ok(EncodingKey::from_rsa_der(der.as_bytes()))
}

/// The public half of `key` as a signing JWK: `kty` RSA, `use` sig, `alg` RS256, `n`, `e`,
/// and `kid` when given.
pub(crate) fn public_jwk(key: &EncodingKey, kid: Option<&str>) -> Result<Jwk, Error> {
    let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256)?;
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
    jwk.common.key_id = kid.map(str::to_owned);
    Ok(jwk)
}

/// A key ID for `key`: its RFC 7638 SHA-256 JWK thumbprint, base64url without padding
/// (43 characters).
pub(crate) fn key_id(key: &EncodingKey) -> Result<String, Error> {
    Ok(public_jwk(key, None)?.thumbprint(ThumbprintHash::SHA256)?)
}
