//! One issuer, on disk and in memory: [`Issuer::init`] writes its directory, [`Issuer::load`]
//! reads it back, [`Issuer::mint`] signs tokens, and [`Issuer::discovery`] / [`Issuer::jwks`]
//! are the documents it publishes.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use axum::http::Uri;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::material;
use crate::token::{Claims, TokenRequest};
use crate::Error;

/// The issuer's CA certificate (PEM); give it to the API server as `certificateAuthority`.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA's private key (PEM, PKCS#8 ECDSA P-256).
pub const CA_KEY_FILE: &str = "ca.key";
/// The serving certificate for IP 127.0.0.1 and DNS `localhost` (PEM), signed by the CA.
pub const TLS_CERT_FILE: &str = "tls.crt";
/// The serving certificate's private key (PEM, PKCS#8 ECDSA P-256).
pub const TLS_KEY_FILE: &str = "tls.key";
/// The token signing key (PEM, PKCS#8 RSA 2048).
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// `{"tenant", "url", "audience", "kid"}`.
pub const ISSUER_FILE: &str = "issuer.json";

/// The contents of `issuer.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct IssuerFile {
    tenant: String,
    url: String,
    audience: String,
    kid: String,
}

/// A local token issuer standing in for one Entra ID tenant: its identity, its signing key,
/// and the directory holding its CA and serving certificate.
pub struct Issuer {
    dir: PathBuf,
    tenant: String,
    url: String,
    audience: String,
    kid: String,
    /// `https://127.0.0.1:PORT`.
    origin: String,
    port: u16,
    /// The URL's path without a trailing slash; empty for the root.
    path: String,
    key: EncodingKey,
    jwk: Jwk,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("dir", &self.dir)
            .field("tenant", &self.tenant)
            .field("url", &self.url)
            .field("audience", &self.audience)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Creates (or overwrites) the issuer directory `dir`, mode 0700: a fresh CA
    /// ([`CA_CERT_FILE`], [`CA_KEY_FILE`]), a serving certificate for 127.0.0.1 and
    /// `localhost` signed by it ([`TLS_CERT_FILE`], [`TLS_KEY_FILE`]), a fresh RSA-2048
    /// signing key ([`SIGNING_KEY_FILE`]) and [`ISSUER_FILE`]. Private keys are mode 0600.
    ///
    /// `url` is the issuer URL tokens carry in `iss` and the discovery document announces,
    /// e.g. `https://127.0.0.1:18443/<tenant>/v2.0`; it must be `https` on `127.0.0.1` with
    /// an explicit port, which is where [`crate::serve`] listens. The key ID is the key's
    /// RFC 7638 thumbprint.
    ///
    /// # Errors
    ///
    /// [`Error::Tenant`] or [`Error::Url`] for unusable arguments, [`Error::Io`] when the
    /// directory or a file cannot be written, [`Error::Key`] / [`Error::Certificate`] /
    /// [`Error::Jwt`] when key or certificate generation fails.
    pub fn init(dir: &Path, tenant: &str, url: &str, audience: &str) -> Result<Self, Error> {
        check_tenant(tenant)?;
        let parsed = parse_url(url)?;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(Error::io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(Error::io(dir))?;

        let tls = material::tls_material(tenant)?;
        write_file(&dir.join(CA_CERT_FILE), &tls.ca_cert, 0o644)?;
        write_file(&dir.join(CA_KEY_FILE), &tls.ca_key, 0o600)?;
        write_file(&dir.join(TLS_CERT_FILE), &tls.cert, 0o644)?;
        write_file(&dir.join(TLS_KEY_FILE), &tls.key, 0o600)?;

        let rsa = material::generate_rsa()?;
        write_file(&dir.join(SIGNING_KEY_FILE), &material::rsa_to_pkcs8_pem(&rsa)?, 0o600)?;
        let key = material::encoding_key(&rsa)?;
        let kid = material::key_id(&key)?;

        let file = IssuerFile {
            tenant: tenant.to_owned(),
            url: url.to_owned(),
            audience: audience.to_owned(),
            kid: kid.clone(),
        };
        let mut text = serde_json::to_string_pretty(&file)
            .map_err(|source| Error::Json { path: dir.join(ISSUER_FILE), source })?;
        text.push('\n');
        write_file(&dir.join(ISSUER_FILE), &text, 0o644)?;

        Issuer::assemble(dir, file, parsed, key)
    }

    /// Loads the issuer that [`Issuer::init`] wrote to `dir` (only [`ISSUER_FILE`] and
    /// [`SIGNING_KEY_FILE`] are read; the TLS files are read by [`crate::serve`]).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a file cannot be read, [`Error::Json`] when `issuer.json` is
    /// malformed, [`Error::Tenant`] / [`Error::Url`] when it holds unusable values,
    /// [`Error::Key`] / [`Error::Jwt`] when the signing key cannot be parsed.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(ISSUER_FILE);
        let text = fs::read_to_string(&path).map_err(Error::io(&path))?;
        let file: IssuerFile = serde_json::from_str(&text).map_err(|source| Error::Json { path, source })?;
        check_tenant(&file.tenant)?;
        let parsed = parse_url(&file.url)?;
        let path = dir.join(SIGNING_KEY_FILE);
        let pem = fs::read_to_string(&path).map_err(Error::io(&path))?;
        let key = material::encoding_key(&material::rsa_from_pkcs8_pem(&pem)?)?;
        Issuer::assemble(dir, file, parsed, key)
    }

    fn assemble(dir: &Path, file: IssuerFile, (port, path): (u16, String), key: EncodingKey) -> Result<Self, Error> {
        let jwk = material::public_jwk(&key, Some(&file.kid))?;
        Ok(Issuer {
            dir: dir.to_owned(),
            tenant: file.tenant,
            url: file.url,
            audience: file.audience,
            kid: file.kid,
            origin: format!("https://127.0.0.1:{port}"),
            port,
            path,
            key,
            jwk,
        })
    }

    /// The tenant ID this issuer speaks for (the default `tid` claim).
    #[must_use]
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The issuer URL, exactly as given to [`Issuer::init`] (the `iss` claim).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The default `aud` claim.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The signing key's ID (the `kid` header and JWK field).
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The issuer directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The TCP port on 127.0.0.1 that the issuer URL names.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Path of the CA certificate that the serving certificate chains to.
    #[must_use]
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// The CA certificate, PEM, as the API server's `certificateAuthority` wants it inline.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read.
    pub fn ca_cert_pem(&self) -> Result<String, Error> {
        let path = self.ca_cert_path();
        fs::read_to_string(&path).map_err(Error::io(&path))
    }

    /// The path, on this issuer's server, of the OIDC discovery document:
    /// `<url path>/.well-known/openid-configuration`.
    #[must_use]
    pub fn discovery_path(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.path)
    }

    /// The full URL of the OIDC discovery document.
    #[must_use]
    pub fn discovery_url(&self) -> String {
        format!("{}{}", self.origin, self.discovery_path())
    }

    /// The path, on this issuer's server, of the JWKS: `/<tenant>/discovery/v2.0/keys`, as Entra ID.
    #[must_use]
    pub fn jwks_path(&self) -> String {
        format!("/{}/discovery/v2.0/keys", self.tenant)
    }

    /// The full URL of the JWKS (`jwks_uri` in the discovery document).
    #[must_use]
    pub fn jwks_uri(&self) -> String {
        format!("{}{}", self.origin, self.jwks_path())
    }

    /// The OIDC discovery document, with the fields Entra ID's v2 document has that matter
    /// to a relying party: `issuer` (the URL exactly), `jwks_uri`, the authorization and
    /// token endpoints (not served), and the supported algorithms and types.
    #[must_use]
    pub fn discovery(&self) -> serde_json::Value {
        let oauth = format!("{}/{}/oauth2/v2.0", self.origin, self.tenant);
        json!({
            "issuer": self.url,
            "jwks_uri": self.jwks_uri(),
            "authorization_endpoint": format!("{oauth}/authorize"),
            "token_endpoint": format!("{oauth}/token"),
            "device_authorization_endpoint": format!("{oauth}/devicecode"),
            "end_session_endpoint": format!("{oauth}/logout"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "groups", "amr", "ver"
            ],
            "request_uri_parameter_supported": false,
            "tenant_region_scope": null,
        })
    }

    /// The JWKS: the one signing key as an RSA JWK (`kty`, `use` sig, `kid`, `alg` RS256, `n`, `e`).
    #[must_use]
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.jwk.clone()] }
    }

    /// The claims [`Issuer::mint`] would sign for `request` now.
    #[must_use]
    pub fn claims(&self, request: &TokenRequest) -> Claims {
        let now = jiff::Timestamp::now().as_second();
        let (iat, nbf, exp) = if request.expired {
            (now - 7200, now - 7200, now - 3600)
        } else if request.not_yet_valid {
            (now, now + 3600, now + 7200)
        } else {
            let lifetime = i64::try_from(request.lifetime.as_secs()).unwrap_or(i64::MAX);
            (now, now, now.saturating_add(lifetime))
        };
        Claims {
            iss: self.url.clone(),
            aud: request.audience_override.clone().unwrap_or_else(|| self.audience.clone()),
            tid: request.tid_override.clone().unwrap_or_else(|| self.tenant.clone()),
            oid: request.oid.clone(),
            sub: request.oid.clone(),
            groups: request.groups.clone(),
            amr: request.amr.clone(),
            iat,
            nbf,
            exp,
            ver: "2.0".to_owned(),
        }
    }

    /// Mints a compact RS256 JWT (header `typ` JWT, `kid` = [`Issuer::kid`]) with the
    /// [`Claims`] for `request`.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] when `request.unknown_key` and a fresh key cannot be generated;
    /// [`Error::Jwt`] when signing fails.
    pub fn mint(&self, request: &TokenRequest) -> Result<String, Error> {
        let claims = self.claims(request);
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid.clone());
        let stranger;
        let key = if request.unknown_key {
            stranger = material::encoding_key(&material::generate_rsa()?)?;
            &stranger
        } else {
            &self.key
        };
        Ok(jsonwebtoken::encode(&header, &claims, key)?)
    }
}

/// A tenant becomes a URL path segment: non-empty, and only letters, digits, `-`, `.`, `_`.
fn check_tenant(tenant: &str) -> Result<(), Error> {
    let segment = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if tenant.is_empty() || tenant == "." || tenant == ".." || !tenant.chars().all(segment) {
        return Err(Error::Tenant(tenant.to_owned()));
    }
    Ok(())
}

/// Splits `https://127.0.0.1:PORT[/PATH]` into the port and the path without a trailing slash.
fn parse_url(url: &str) -> Result<(u16, String), Error> {
    let invalid = |reason: &str| Error::Url { url: url.to_owned(), reason: reason.to_owned() };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(invalid("must be https"));
    }
    let port = uri.port_u16().ok_or_else(|| invalid("must name a port"))?;
    if uri.authority().map(axum::http::uri::Authority::as_str) != Some(format!("127.0.0.1:{port}").as_str()) {
        return Err(invalid("host must be 127.0.0.1"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(invalid("must have no query or fragment"));
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '/');
    if !uri.path().chars().all(plain) {
        return Err(invalid("path may hold only letters, digits and - . _ ~ /"));
    }
    Ok((port, uri.path().trim_end_matches('/').to_owned()))
}

/// Writes `text` to `path` with permission bits `mode`, replacing any file there (a
/// replaced key is never readable with the old, possibly wider, permissions).
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path)(e)),
    }
    let mut file =
        fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(Error::io(path))?;
    file.write_all(text.as_bytes()).map_err(Error::io(path))?;
    // The umask may have narrowed `mode`; public files must stay readable.
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(Error::io(path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::{DecodingKey, TokenData, Validation};

    use super::*;
    use crate::fixture::{scratch, shared, url, AUDIENCE, TENANT};

    const OID: &str = "6f1a3b5c-0000-4000-8000-000000000001";
    const GROUP: &str = "a1b2c3d4-0000-4000-8000-000000000002";

    /// Verifies as an API server would: RS256 only, with the JWK that the JWKS publishes
    /// under the token's `kid`, issuer and audience pinned, `exp`/`nbf` checked.
    fn verify(issuer: &Issuer, token: &str) -> jsonwebtoken::errors::Result<TokenData<Claims>> {
        let header = jsonwebtoken::decode_header(token)?;
        let jwks = issuer.jwks();
        let jwk = jwks.find(header.kid.as_deref().unwrap_or_default()).expect("kid in JWKS");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer.url()]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_jwk(jwk)?, &validation)
    }

    #[test]
    fn minted_token_verifies_and_carries_entra_claims() {
        let issuer = shared();
        let request = TokenRequest::new(OID).group(GROUP).amr(["pwd", "mfa"]).lifetime(Duration::from_secs(1800));
        let token = issuer.mint(&request).unwrap();
        let data = verify(issuer, &token).unwrap();
        assert_eq!(data.header.alg, Algorithm::RS256);
        assert_eq!(data.header.kid.as_deref(), Some(issuer.kid()));
        assert_eq!(data.header.typ.as_deref(), Some("JWT"));
        let claims = data.claims;
        assert_eq!(claims.iss, issuer.url());
        assert_eq!(claims.iss, url(18443, TENANT));
        assert_eq!(claims.aud, AUDIENCE);
        assert_eq!(claims.tid, TENANT);
        assert_eq!(claims.oid, OID);
        assert_eq!(claims.sub, OID);
        assert_eq!(claims.groups, [GROUP]);
        assert_eq!(claims.amr, ["pwd", "mfa"]);
        assert_eq!(claims.ver, "2.0");
        assert_eq!(claims.nbf, claims.iat);
        assert_eq!(claims.exp - claims.iat, 1800);
        let now = jiff::Timestamp::now().as_second();
        assert!((now - 60..=now).contains(&claims.iat), "iat {} is not now ({now})", claims.iat);

        // The raw payload has exactly the Entra-shaped claim set, groups and amr as arrays.
        let raw: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
        let mut names: Vec<&str> = raw.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["amr", "aud", "exp", "groups", "iat", "iss", "nbf", "oid", "sub", "tid", "ver"]);
        assert!(raw["groups"].is_array() && raw["amr"].is_array());
    }

    #[test]
    fn defaults_are_one_hour_of_pwd_without_groups() {
        let issuer = shared();
        let claims = verify(issuer, &issuer.mint(&TokenRequest::new(OID)).unwrap()).unwrap().claims;
        assert_eq!(claims.amr, ["pwd"]);
        assert!(claims.groups.is_empty());
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn expired_token_fails_validation() {
        let issuer = shared();
        let token = issuer.mint(&TokenRequest::new(OID).expired()).unwrap();
        let err = verify(issuer, &token).unwrap_err();
        assert_eq!(*err.kind(), ErrorKind::ExpiredSignature);
        let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
        let now = jiff::Timestamp::now().as_second();
        assert!((now - 7260..=now - 7200).contains(&claims.iat));
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn unknown_key_fails_the_signature_check_under_the_published_kid() {
        let issuer = shared();
        let token = issuer.mint(&TokenRequest::new(OID).unknown_key()).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), Some(issuer.kid()));
        let err = verify(issuer, &token).unwrap_err();
        assert_eq!(*err.kind(), ErrorKind::InvalidSignature);
    }

    #[test]
    fn tid_and_audience_can_be_overridden() {
        let issuer = shared();
        let other = "0a0b0c0d-0000-4000-8000-0000000000ff";
        let token = issuer.mint(&TokenRequest::new(OID).tid(other)).unwrap();
        let claims = verify(issuer, &token).unwrap().claims;
        assert_eq!(claims.tid, other);
        assert_eq!(claims.iss, issuer.url(), "the issuer stays the issuer");

        let token = issuer.mint(&TokenRequest::new(OID).audience("api://elsewhere")).unwrap();
        assert_eq!(*verify(issuer, &token).unwrap_err().kind(), ErrorKind::InvalidAudience);
    }

    #[test]
    fn jwks_publishes_one_rsa_signing_key() {
        let jwks = serde_json::to_value(shared().jwks()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let key = &keys[0];
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["kid"], shared().kid());
        assert_eq!(key["e"], "AQAB");
        // 2048-bit modulus: 256 bytes, 342 base64url characters without padding.
        assert_eq!(key["n"].as_str().unwrap().len(), 342);
    }

    #[test]
    fn discovery_names_the_issuer_exactly_and_the_entra_style_jwks_uri() {
        let issuer = shared();
        let doc = issuer.discovery();
        assert_eq!(doc["issuer"], issuer.url());
        assert_eq!(doc["jwks_uri"], format!("https://127.0.0.1:18443/{TENANT}/discovery/v2.0/keys"));
        assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
        for field in ["authorization_endpoint", "token_endpoint", "response_types_supported", "subject_types_supported"]
        {
            assert!(!doc[field].is_null(), "{field} missing");
        }
        assert_eq!(issuer.discovery_path(), format!("/{TENANT}/v2.0/.well-known/openid-configuration"));
    }

    #[test]
    fn init_writes_a_private_directory_and_load_reads_it_back() {
        let dir = scratch("layout");
        let first = Issuer::init(&dir, TENANT, &url(19443, TENANT), AUDIENCE).unwrap();
        let mode = |name: &str| fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(""), 0o700);
        for (name, expected) in [
            (CA_CERT_FILE, 0o644),
            (CA_KEY_FILE, 0o600),
            (TLS_CERT_FILE, 0o644),
            (TLS_KEY_FILE, 0o600),
            (SIGNING_KEY_FILE, 0o600),
            (ISSUER_FILE, 0o644),
        ] {
            assert_eq!(mode(name), expected, "{name}");
        }
        let signing = fs::read_to_string(dir.join(SIGNING_KEY_FILE)).unwrap();
        assert!(signing.starts_with("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8 PEM");
        let first_ca = first.ca_cert_pem().unwrap();
        assert!(first_ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join(ISSUER_FILE)).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"tenant": TENANT, "url": url(19443, TENANT), "audience": AUDIENCE, "kid": first.kid()})
        );

        let loaded = Issuer::load(&dir).unwrap();
        assert_eq!(loaded.kid(), first.kid());
        assert_eq!(loaded.jwks(), first.jwks());
        assert_eq!(loaded.port(), 19443);
        let token = first.mint(&TokenRequest::new(OID)).unwrap();
        assert_eq!(verify(&loaded, &token).unwrap().claims.oid, OID);

        // Re-running init overwrites everything with fresh keys.
        let second = Issuer::init(&dir, TENANT, &url(19443, TENANT), AUDIENCE).unwrap();
        assert_ne!(second.kid(), first.kid());
        assert_ne!(second.ca_cert_pem().unwrap(), first_ca);
        assert_eq!(Issuer::load(&dir).unwrap().kid(), second.kid());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn urls_must_be_https_on_127_0_0_1_with_a_port() {
        assert_eq!(parse_url("https://127.0.0.1:18443/t/v2.0").unwrap(), (18443, "/t/v2.0".to_owned()));
        assert_eq!(parse_url("https://127.0.0.1:18443/t/v2.0/").unwrap(), (18443, "/t/v2.0".to_owned()));
        assert_eq!(parse_url("https://127.0.0.1:8443").unwrap(), (8443, String::new()));
        for bad in [
            "http://127.0.0.1:18443/t/v2.0",
            "https://localhost:18443/t/v2.0",
            "https://127.0.0.1/t/v2.0",
            "https://user@127.0.0.1:18443/t",
            "https://127.0.0.1:18443/t?x=1",
            "https://127.0.0.1:18443/{t}",
            "not a url",
        ] {
            assert!(matches!(parse_url(bad), Err(Error::Url { .. })), "{bad} was accepted");
        }
    }

    #[test]
    fn tenants_must_be_path_segments() {
        assert!(check_tenant(TENANT).is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "{t}"] {
            assert!(matches!(check_tenant(bad), Err(Error::Tenant(_))), "{bad:?} was accepted");
        }
        let dir = scratch("bad-tenant");
        assert!(Issuer::init(&dir, "a/b", &url(1, "x"), AUDIENCE).is_err());
        assert!(!dir.exists(), "nothing is written for bad arguments");
    }
}
