//! A local JWT issuer standing in for one Entra ID tenant, for kube-lighthouse's local
//! control plane and tests (SPEC §2 "Sign-in, for real").
//!
//! Each issuer lives in a directory made by [`Issuer::init`]: its own CA, a serving
//! certificate for 127.0.0.1, an RSA-2048 signing key and `issuer.json`. [`serve`] publishes
//! OIDC discovery and the JWKS over HTTPS where the API server's structured authentication
//! (`--authentication-config`) fetches them, and [`Issuer::mint`] signs tokens shaped like
//! Entra ID v2 access tokens (`iss`, `aud`, `tid`, `oid`, `sub`, `groups`, `amr`, `iat`,
//! `nbf`, `exp`, `ver`; RS256 with `kid`).
//!
//! ```no_run
//! use kl_token_issuer::{Issuer, TokenRequest};
//! # fn main() -> Result<(), kl_token_issuer::Error> {
//! let issuer = Issuer::load(std::path::Path::new("/tmp/iss"))?;
//! let token = issuer.mint(&TokenRequest::new("6f1a…").group("a1b2…").amr(["pwd", "mfa"]))?;
//! # Ok(()) }
//! ```

mod error;
mod issuer;
mod material;
mod server;
mod token;

pub use error::Error;
pub use issuer::{Issuer, CA_CERT_FILE, CA_KEY_FILE, ISSUER_FILE, SIGNING_KEY_FILE, TLS_CERT_FILE, TLS_KEY_FILE};
pub use material::RSA_BITS;
pub use server::{router, serve, serve_all, serve_on};
pub use token::{parse_lifetime, Claims, TokenRequest, DEFAULT_LIFETIME};

#[cfg(test)]
mod fixture;
