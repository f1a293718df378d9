//! What a token says: the request a caller makes ([`TokenRequest`]), the Entra-ID-v2-shaped
//! claims that come out of it ([`Claims`]), and the humane lifetime syntax (`30m`, `1h`, `90s`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Lifetime of a token when none is asked for: one hour, as Entra ID's default.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The claims of a minted token, shaped like an Entra ID v2 access token.
///
/// Times are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer URL, exactly as given to `init` (Entra: `https://login.microsoftonline.com/<tid>/v2.0`).
    pub iss: String,
    /// The audience (Entra: the API's application ID URI or client ID).
    pub aud: String,
    /// The tenant the token speaks for; the issuer's own tenant unless overridden.
    pub tid: String,
    /// The user's object ID in that tenant.
    pub oid: String,
    /// Subject: equal to `oid` here (Entra's `sub` is pairwise, but kube-lighthouse maps `oid`).
    pub sub: String,
    /// Object IDs of the user's groups, in the order given.
    pub groups: Vec<String>,
    /// Authentication methods, e.g. `["pwd", "mfa"]`.
    pub amr: Vec<String>,
    /// Issued at.
    pub iat: i64,
    /// Not valid before (equal to `iat`, unless the request is not yet valid).
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Token version: always `"2.0"`.
    pub ver: String,
}

/// What to put in a token, and how to sign it. Build with [`TokenRequest::new`] and the
/// chaining setters, or with struct update syntax from `TokenRequest::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The user's object ID (`oid` and `sub`).
    pub oid: String,
    /// Group object IDs (`groups`); empty by default.
    pub groups: Vec<String>,
    /// Authentication methods (`amr`); `["pwd"]` by default.
    pub amr: Vec<String>,
    /// From `iat` to `exp`; [`DEFAULT_LIFETIME`] by default. Ignored when `expired`.
    pub lifetime: Duration,
    /// Make a token that expired an hour ago (`iat` two hours ago, `exp` one hour ago).
    pub expired: bool,
    /// Make a token not valid for another hour (`nbf` in an hour, `exp` in two).
    pub not_yet_valid: bool,
    /// Sign with a freshly generated key that is not in the JWKS, under the published `kid`,
    /// so only the signature check can reject it.
    pub unknown_key: bool,
    /// Put this in `tid` instead of the issuer's tenant.
    pub tid_override: Option<String>,
    /// Put this in `aud` instead of the issuer's audience.
    pub audience_override: Option<String>,
}

impl Default for TokenRequest {
    fn default() -> Self {
        TokenRequest {
            oid: String::new(),
            groups: Vec::new(),
            amr: vec!["pwd".to_owned()],
            lifetime: DEFAULT_LIFETIME,
            expired: false,
            not_yet_valid: false,
            unknown_key: false,
            tid_override: None,
            audience_override: None,
        }
    }
}

impl TokenRequest {
    /// A request for a valid one-hour token for user `oid`, no groups, `amr` `["pwd"]`.
    #[must_use]
    pub fn new(oid: impl Into<String>) -> Self {
        TokenRequest { oid: oid.into(), ..TokenRequest::default() }
    }

    /// Adds one group object ID.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Replaces the group object IDs.
    #[must_use]
    pub fn groups<I: IntoIterator<Item = S>, S: Into<String>>(mut self, groups: I) -> Self {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the authentication methods, e.g. `["pwd", "mfa"]`.
    #[must_use]
    pub fn amr<I: IntoIterator<Item = S>, S: Into<String>>(mut self, amr: I) -> Self {
        self.amr = amr.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the lifetime (from `iat` to `exp`).
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Makes the token expired an hour ago (see the field of the same name).
    #[must_use]
    pub fn expired(mut self) -> Self {
        self.expired = true;
        self
    }

    /// Makes the token valid only from an hour on (see the field of the same name).
    #[must_use]
    pub fn not_yet_valid(mut self) -> Self {
        self.not_yet_valid = true;
        self
    }

    /// Signs with a key that is not in the JWKS (see the field of the same name).
    #[must_use]
    pub fn unknown_key(mut self) -> Self {
        self.unknown_key = true;
        self
    }

    /// Claims tenant `tid` instead of the issuer's own.
    #[must_use]
    pub fn tid(mut self, tid: impl Into<String>) -> Self {
        self.tid_override = Some(tid.into());
        self
    }

    /// Sets `aud` instead of the issuer's audience.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience_override = Some(audience.into());
        self
    }
}

/// Parses a humane, positive duration: `90s`, `30m`, `1h`, `1h30m`, `2 hours`, or ISO 8601
/// (`PT1H`). Whole seconds are kept; fractions are dropped.
///
/// # Errors
///
/// [`Error::Lifetime`] when the text is not a duration or is not at least one second.
pub fn parse_lifetime(input: &str) -> Result<Duration, Error> {
    let invalid = |reason: String| Error::Lifetime { input: input.to_owned(), reason };
    let parsed: jiff::SignedDuration = input.trim().parse().map_err(|e: jiff::Error| invalid(e.to_string()))?;
    let seconds = parsed.as_secs();
    if seconds < 1 {
        return Err(invalid("must be at least one second".to_owned()));
    }
    Ok(Duration::from_secs(seconds.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_humanely() {
        assert_eq!(parse_lifetime("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_lifetime("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_lifetime("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_lifetime("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_lifetime("2 hours").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_lifetime("PT1H").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn lifetimes_must_be_positive_durations() {
        for bad in ["", "0s", "-1h", "soon", "1x"] {
            assert!(matches!(parse_lifetime(bad), Err(Error::Lifetime { .. })), "{bad:?} was accepted");
        }
    }

    #[test]
    fn requests_default_to_one_hour_of_pwd() {
        let request = TokenRequest::new("u");
        assert_eq!(request.oid, "u");
        assert_eq!(request.amr, ["pwd"]);
        assert_eq!(request.lifetime, DEFAULT_LIFETIME);
        assert!(request.groups.is_empty() && !request.expired && !request.unknown_key && !request.not_yet_valid);
        assert!(TokenRequest::new("u").not_yet_valid().not_yet_valid);
        let request =
            request.group("g1").group("g2").amr(["pwd", "mfa"]).tid("t").audience("a").expired().unknown_key();
        assert_eq!(request.groups, ["g1", "g2"]);
        assert_eq!(request.amr, ["pwd", "mfa"]);
        assert_eq!(request.tid_override.as_deref(), Some("t"));
        assert_eq!(request.audience_override.as_deref(), Some("a"));
        assert!(request.expired && request.unknown_key);
    }
}
