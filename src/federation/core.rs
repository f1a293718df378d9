//! The broker's decisions, pure: which exchange requests are well-formed, which tenants may
//! exchange at all, where a tenant's authority is, and what the issued token says and for how
//! long. No I/O and no clock: the shell passes `now` and what the caches hold.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strum::IntoStaticStr;

use crate::api::{ProvisioningState, RegistrationAssignment};
use crate::model::tenant::Guid;

/// RFC 8693's grant type.
pub const GRANT_TYPE_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of the issued token, and the one a subject token is given as.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Also accepted as a subject token's type: an Entra ID token is a JWT either way.
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// Also accepted as a subject token's type.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The placeholder of the authority template.
pub const TENANT_PLACEHOLDER: &str = "{tenantId}";
/// Entra ID's v2 authority of a tenant: the issuer of its tokens and the base of its discovery.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/{tenantId}/v2.0";
/// The same description for every refused subject token, whatever the reason: the caller
/// learns nothing about which tenants are delegated (the reason is logged and counted).
pub const REFUSED_DESCRIPTION: &str =
    "the subject token was refused: it must be a valid, unexpired token of a managing tenant that this cluster's customers delegated to, for an accepted audience";

/// Why a subject token is refused. Never told to the caller (see [`REFUSED_DESCRIPTION`]);
/// logged, and counted by reason (`kube_lighthouse_federation_refusals_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, IntoStaticStr, thiserror::Error)]
#[strum(serialize_all = "snake_case")]
pub enum Refusal {
    /// Not a JWT, or its claims are not the expected shape (no `tid`/`oid`, `tid` not a GUID).
    #[error("not a well-formed token of the expected shape")]
    Malformed,
    /// No delegation in force names the token's tenant.
    #[error("no delegation in force names the tenant")]
    TenantNotDelegated,
    /// The tenant is delegated, but outside `--federation-tenants`.
    #[error("the tenant is outside the allow-list")]
    TenantNotAllowed,
    /// `iss` is not the tenant's own authority (the template applied to `tid`).
    #[error("the issuer is not the tenant's own authority")]
    IssuerMismatch,
    /// The tenant's authority publishes no key of the token's `kid`, even after a refresh.
    #[error("the tenant's authority publishes no key of this key ID")]
    UnknownKey,
    /// The signature does not verify with the tenant's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// `exp` has passed.
    #[error("expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("not yet valid")]
    NotYetValid,
    /// `aud` is not one of `--federation-subject-audiences`.
    #[error("the audience is not accepted")]
    WrongAudience,
    /// The tenant's discovery document or keys could not be fetched or read.
    #[error("the tenant's authority could not be reached or read")]
    AuthorityUnavailable,
}

impl Refusal {
    /// The reason as a metric label and log field.
    pub fn label(self) -> &'static str {
        self.into()
    }
}

/// Why an exchange request is malformed (before any token is looked at): OAuth's
/// `invalid_request` or `unsupported_grant_type`, with a description that names the parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    /// `invalid_request` or `unsupported_grant_type`.
    pub error: &'static str,
    /// Which parameter, and what it must be.
    pub description: String,
}

impl RequestError {
    fn invalid(description: impl Into<String>) -> Self {
        RequestError { error: "invalid_request", description: description.into() }
    }
}

/// The parameters of `POST /federation/token` (RFC 8693 §2.1), as sent.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ExchangeForm {
    /// Must be [`GRANT_TYPE_TOKEN_EXCHANGE`].
    pub grant_type: Option<String>,
    /// The engineer's token of their own tenant.
    pub subject_token: Option<String>,
    /// [`TOKEN_TYPE_JWT`], [`TOKEN_TYPE_ID_TOKEN`] or [`TOKEN_TYPE_ACCESS_TOKEN`].
    pub subject_token_type: Option<String>,
    /// When present, the issued token's configured audience.
    pub audience: Option<String>,
    /// When present, [`TOKEN_TYPE_JWT`].
    pub requested_token_type: Option<String>,
}

/// Checks an exchange request's parameters against the broker's contract (docs/install.md,
/// "The sign-in broker"): returns the subject token.
///
/// # Errors
/// [`RequestError`]: `unsupported_grant_type` for any grant but token exchange;
/// `invalid_request` for a missing or empty subject token, an unknown subject token type, an
/// audience other than `issued_audience`, or a requested token type other than a JWT.
pub fn check_request<'a>(form: &'a ExchangeForm, issued_audience: &str) -> Result<&'a str, RequestError> {
    match form.grant_type.as_deref() {
        Some(GRANT_TYPE_TOKEN_EXCHANGE) => {}
        Some(other) => {
            return Err(RequestError {
                error: "unsupported_grant_type",
                description: format!("grant_type {other:?} is not supported: only {GRANT_TYPE_TOKEN_EXCHANGE}"),
            })
        }
        None => return Err(RequestError::invalid(format!("grant_type is required: {GRANT_TYPE_TOKEN_EXCHANGE}"))),
    }
    let token = form.subject_token.as_deref().filter(|t| !t.trim().is_empty());
    let token =
        token.ok_or_else(|| RequestError::invalid("subject_token is required: the engineer's Entra ID token"))?;
    match form.subject_token_type.as_deref() {
        Some(TOKEN_TYPE_JWT | TOKEN_TYPE_ID_TOKEN | TOKEN_TYPE_ACCESS_TOKEN) => {}
        Some(other) => {
            return Err(RequestError::invalid(format!(
                "subject_token_type {other:?} is not supported: {TOKEN_TYPE_JWT}, {TOKEN_TYPE_ID_TOKEN} or {TOKEN_TYPE_ACCESS_TOKEN}"
            )))
        }
        None => return Err(RequestError::invalid(format!("subject_token_type is required: {TOKEN_TYPE_JWT}"))),
    }
    if let Some(audience) = form.audience.as_deref() {
        if audience != issued_audience {
            return Err(RequestError::invalid(format!(
                "audience {audience:?} is not issued here: omit it, or ask for {issued_audience:?}"
            )));
        }
    }
    if let Some(kind) = form.requested_token_type.as_deref() {
        if kind != TOKEN_TYPE_JWT {
            return Err(RequestError::invalid(format!(
                "requested_token_type {kind:?} is not issued: only {TOKEN_TYPE_JWT}"
            )));
        }
    }
    Ok(token.trim())
}

/// What the broker reads of a subject token before it trusts it: which tenant it claims to be
/// of, and which issuer. Used only to pick the tenant's authority and keys; the verified
/// claims are [`SubjectClaims`].
#[derive(Clone, Debug, Deserialize)]
pub struct Claimed {
    /// The tenant the token claims.
    pub tid: Option<String>,
    /// The issuer the token claims.
    pub iss: Option<String>,
}

/// The authority of `tenant` under `template` (`{tenantId}` replaced).
pub fn authority(template: &str, tenant: &Guid) -> String {
    template.replace(TENANT_PLACEHOLDER, tenant.as_str())
}

/// Whether a delegation in force names `tenant`: an assignment whose provisioning state is
/// Succeeded has it as its managing tenant (its definition's standing and eligible
/// authorizations alike: an eligible authorization's engineer must sign in to activate).
pub fn delegated<'a>(assignments: impl IntoIterator<Item = &'a RegistrationAssignment>, tenant: &Guid) -> bool {
    assignments.into_iter().filter_map(|a| a.status.as_ref()).any(|s| {
        s.provisioning_state == Some(ProvisioningState::Succeeded)
            && s.managed_by_tenant_id.as_deref().and_then(Guid::parse).as_ref() == Some(tenant)
    })
}

/// The tenants whose keys the broker keeps fetched ahead of any exchange: every tenant a
/// delegation in force names ([`delegated`]), within `allow_list` when there is one. Exactly
/// the tenants [`admit`] can admit, so that no exchange of an admitted tenant waits for its
/// authority, and no other tenant's authority is ever asked.
pub fn prefetched<'a>(
    assignments: impl IntoIterator<Item = &'a RegistrationAssignment>,
    allow_list: Option<&BTreeSet<String>>,
) -> BTreeSet<Guid> {
    assignments
        .into_iter()
        .filter_map(|a| a.status.as_ref())
        .filter(|s| s.provisioning_state == Some(ProvisioningState::Succeeded))
        .filter_map(|s| s.managed_by_tenant_id.as_deref().and_then(Guid::parse))
        .filter(|t| allow_list.is_none_or(|allowed| allowed.contains(t.as_str())))
        .collect()
}

/// What the broker knows of one prefetched tenant's keys: how long ago they were fetched and
/// how long ago a fetch was last tried (None: never), and whether an exchange has met a key ID
/// they lack since.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeysState {
    /// Age of the keys held; None: none held.
    pub fetched: Option<Duration>,
    /// Time since the last fetch was started, whatever came of it; None: never tried.
    pub tried: Option<Duration>,
    /// An exchange met a key ID the held keys lack (the tenant may have rotated).
    pub wanted: bool,
}

/// How often a prefetched tenant's keys are fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshTimes {
    /// Least time between two fetches of one tenant, whatever asks: forged key IDs and an
    /// unreachable authority cannot make the broker hammer it.
    pub min_interval: Duration,
    /// Keys this old are fetched again, unasked (new keys are published weeks ahead).
    pub period: Duration,
}

/// Whether the broker fetches a prefetched tenant's keys now: never within
/// `min_interval` of the last try; otherwise when none are held (a new delegation, or the last
/// fetch failed), an exchange met an unknown key ID, or they are `period` old.
pub fn refresh_due(state: KeysState, times: &RefreshTimes) -> bool {
    if state.tried.is_some_and(|since| since < times.min_interval) {
        return false;
    }
    state.fetched.is_none_or(|age| state.wanted || age >= times.period)
}

/// Whether a subject token claiming `claimed` may be verified at all, and against which
/// authority: its `tid` is a GUID that a delegation in force names (`is_delegated`, e.g.
/// [`delegated`] over the assignments cache), inside the allow-list when there is one, and its
/// `iss` is exactly that tenant's authority. Checked before any key is looked at, so an
/// undelegated tenant costs the broker no request; and as an admitted tenant's keys are
/// fetched ahead ([`prefetched`], [`refresh_due`]), no exchange waits for an authority either:
/// the time to answer does not tell whether a tenant is delegated.
///
/// # Errors
/// [`Refusal::Malformed`], [`Refusal::TenantNotDelegated`], [`Refusal::TenantNotAllowed`],
/// [`Refusal::IssuerMismatch`].
pub fn admit(
    claimed: &Claimed,
    is_delegated: impl FnOnce(&Guid) -> bool,
    allow_list: Option<&BTreeSet<String>>,
    template: &str,
) -> Result<(Guid, String), Refusal> {
    let tenant = claimed.tid.as_deref().and_then(Guid::parse).ok_or(Refusal::Malformed)?;
    if !is_delegated(&tenant) {
        return Err(Refusal::TenantNotDelegated);
    }
    if allow_list.is_some_and(|allowed| !allowed.contains(tenant.as_str())) {
        return Err(Refusal::TenantNotAllowed);
    }
    let authority = authority(template, &tenant);
    if claimed.iss.as_deref() != Some(authority.as_str()) {
        return Err(Refusal::IssuerMismatch);
    }
    Ok((tenant, authority))
}

/// The claims of a verified subject token that the issued token carries.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SubjectClaims {
    /// The tenant.
    pub tid: String,
    /// The principal's object ID in that tenant.
    pub oid: String,
    /// Group object IDs; absent is none.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Authentication methods (`mfa` for just-in-time access, docs/just-in-time.md).
    #[serde(default)]
    pub amr: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// The claims of an issued token (docs/install.md, "The sign-in broker"). Times are seconds
/// since the epoch; `tid`, `oid` and `sub` are lower case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedClaims {
    /// The broker's issuer URL.
    pub iss: String,
    /// The configured audience of issued tokens.
    pub aud: String,
    /// `<tid>:<oid>`: unique across tenants.
    pub sub: String,
    /// The subject token's tenant.
    pub tid: String,
    /// The subject token's object ID.
    pub oid: String,
    /// The subject token's groups.
    pub groups: Vec<String>,
    /// The subject token's authentication methods.
    pub amr: Vec<String>,
    /// Issued at.
    pub iat: i64,
    /// Not before (= `iat`).
    pub nbf: i64,
    /// Expiry: at most the subject token's and `iat` + the maximum lifetime.
    pub exp: i64,
    /// A unique ID, for the audit trail.
    pub jti: String,
}

/// What the issued token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuance<'a> {
    /// The broker's issuer URL.
    pub issuer: &'a str,
    /// The audience of issued tokens.
    pub audience: &'a str,
    /// Longest life of an issued token, seconds.
    pub max_lifetime: i64,
}

/// The issued token's claims for the verified `subject` of `tenant` at `now` (seconds since
/// the epoch): same `tid`, `oid` (both lower case), `groups`, `amr`; `exp` the earlier of the
/// subject token's and `now + max_lifetime`.
///
/// # Errors
/// [`Refusal::Malformed`] when the subject's `tid` is not `tenant` (the key that verified it is
/// `tenant`'s) or `oid` is empty; [`Refusal::Expired`] when no life is left.
pub fn issue(
    subject: &SubjectClaims,
    tenant: &Guid,
    now: i64,
    issuance: &Issuance<'_>,
    jti: String,
) -> Result<IssuedClaims, Refusal> {
    if Guid::parse(&subject.tid).as_ref() != Some(tenant) || subject.oid.trim().is_empty() || subject.oid.contains(':')
    {
        return Err(Refusal::Malformed);
    }
    let exp = subject.exp.min(now.saturating_add(issuance.max_lifetime));
    if exp <= now {
        return Err(Refusal::Expired);
    }
    // Entra ID compares GUIDs case-insensitively, RBAC compares names exactly: the issued
    // `tid` and `oid` (so `sub` and the mapped `<tid>:<oid>`) are always lower case, as the
    // delegations name them.
    let tid = tenant.as_str().to_owned();
    let oid = subject.oid.to_ascii_lowercase();
    Ok(IssuedClaims {
        iss: issuance.issuer.to_owned(),
        aud: issuance.audience.to_owned(),
        sub: format!("{tid}:{oid}"),
        tid,
        oid,
        groups: subject.groups.clone(),
        amr: subject.amr.clone(),
        iat: now,
        nbf: now,
        exp,
        jti,
    })
}

/// The broker's discovery document for `issuer` (OpenID Connect Discovery 1.0): what the API
/// server reads to find the keys, and the client to find the token endpoint.
pub fn discovery(issuer: &str, algorithm: &str) -> serde_json::Value {
    serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/keys"),
        "token_endpoint": format!("{issuer}/token"),
        "grant_types_supported": [GRANT_TYPE_TOKEN_EXCHANGE],
        "id_token_signing_alg_values_supported": [algorithm],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "aud", "sub", "tid", "oid", "groups", "amr", "iat", "nbf", "exp", "jti"],
    })
}

/// Checks the issuer URL of `--federation-issuer`: `https`, no query or fragment, no
/// trailing slash; it must end in `/federation`, where the routes are.
///
/// # Errors
/// What is wrong with it.
pub fn check_issuer(url: &str) -> Result<(), String> {
    if !url.starts_with("https://") {
        return Err(format!("{url:?} must be an https URL"));
    }
    if url.contains(['?', '#']) {
        return Err(format!("{url:?} must have no query or fragment"));
    }
    if !url.ends_with("/federation") {
        return Err(format!("{url:?} must end in /federation, where the broker is served"));
    }
    Ok(())
}

/// Checks the authority template of `--federation-authority`: `https`, with `{tenantId}` once.
///
/// # Errors
/// What is wrong with it.
pub fn check_template(template: &str) -> Result<(), String> {
    if !template.starts_with("https://") {
        return Err(format!("{template:?} must be an https URL"));
    }
    if template.matches(TENANT_PLACEHOLDER).count() != 1 {
        return Err(format!("{template:?} must contain {TENANT_PLACEHOLDER} exactly once"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DefinitionRef, RegistrationAssignmentSpec, RegistrationAssignmentStatus};

    fn spec() -> RegistrationAssignmentSpec {
        RegistrationAssignmentSpec { registration_definition_ref: DefinitionRef { name: "d".into() } }
    }

    const T1: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
    const T2: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    fn form(pairs: &[(&str, &str)]) -> ExchangeForm {
        let get = |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| (*v).to_owned());
        ExchangeForm {
            grant_type: get("grant_type"),
            subject_token: get("subject_token"),
            subject_token_type: get("subject_token_type"),
            audience: get("audience"),
            requested_token_type: get("requested_token_type"),
        }
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("grant_type", GRANT_TYPE_TOKEN_EXCHANGE),
            ("subject_token", "a.b.c"),
            ("subject_token_type", TOKEN_TYPE_JWT),
        ]
    }

    #[test]
    fn a_token_exchange_request_yields_its_subject_token() {
        assert_eq!(check_request(&form(&good()), "kube-lighthouse"), Ok("a.b.c"));
        for kind in [TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_ACCESS_TOKEN] {
            let mut pairs = good();
            pairs[2].1 = kind;
            assert_eq!(check_request(&form(&pairs), "kube-lighthouse"), Ok("a.b.c"));
        }
        let mut pairs = good();
        pairs.push(("audience", "kube-lighthouse"));
        pairs.push(("requested_token_type", TOKEN_TYPE_JWT));
        assert_eq!(check_request(&form(&pairs), "kube-lighthouse"), Ok("a.b.c"));
    }

    #[test]
    fn malformed_requests_name_the_parameter() {
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (vec![], "invalid_request", "grant_type"),
            (
                vec![
                    ("grant_type", "client_credentials"),
                    ("subject_token", "x"),
                    ("subject_token_type", TOKEN_TYPE_JWT),
                ],
                "unsupported_grant_type",
                "client_credentials",
            ),
            (
                vec![("grant_type", GRANT_TYPE_TOKEN_EXCHANGE), ("subject_token_type", TOKEN_TYPE_JWT)],
                "invalid_request",
                "subject_token",
            ),
            (
                vec![
                    ("grant_type", GRANT_TYPE_TOKEN_EXCHANGE),
                    ("subject_token", " "),
                    ("subject_token_type", TOKEN_TYPE_JWT),
                ],
                "invalid_request",
                "subject_token",
            ),
            (
                vec![("grant_type", GRANT_TYPE_TOKEN_EXCHANGE), ("subject_token", "x")],
                "invalid_request",
                "subject_token_type",
            ),
            (
                vec![
                    ("grant_type", GRANT_TYPE_TOKEN_EXCHANGE),
                    ("subject_token", "x"),
                    ("subject_token_type", "urn:x:saml2"),
                ],
                "invalid_request",
                "subject_token_type",
            ),
        ];
        for (pairs, error, names) in cases {
            let e = check_request(&form(&pairs), "kube-lighthouse").expect_err("refused");
            assert_eq!(e.error, error, "{pairs:?}");
            assert!(e.description.contains(names), "{pairs:?}: {}", e.description);
        }
        let mut pairs = good();
        pairs.push(("audience", "someone-else"));
        let e = check_request(&form(&pairs), "kube-lighthouse").expect_err("refused");
        assert!(e.description.contains("audience"), "{}", e.description);
        let mut pairs = good();
        pairs.push(("requested_token_type", TOKEN_TYPE_ACCESS_TOKEN));
        let e = check_request(&form(&pairs), "kube-lighthouse").expect_err("refused");
        assert!(e.description.contains("requested_token_type"), "{}", e.description);
    }

    fn assignment(tenant: Option<&str>, state: Option<ProvisioningState>) -> RegistrationAssignment {
        let mut a = RegistrationAssignment::new("a", spec());
        a.status = Some(RegistrationAssignmentStatus {
            provisioning_state: state,
            managed_by_tenant_id: tenant.map(str::to_owned),
            ..RegistrationAssignmentStatus::default()
        });
        a
    }

    #[test]
    fn only_succeeded_assignments_name_tenants() {
        let upper = T2.to_ascii_uppercase();
        let assignments = [
            assignment(Some(T1), Some(ProvisioningState::Succeeded)),
            assignment(Some(&upper), Some(ProvisioningState::Succeeded)),
            assignment(Some("11111111-1111-4111-8111-111111111111"), Some(ProvisioningState::Failed)),
            assignment(Some("22222222-2222-4222-8222-222222222222"), Some(ProvisioningState::Accepted)),
            assignment(Some("33333333-3333-4333-8333-333333333333"), Some(ProvisioningState::Deleting)),
            assignment(Some("not-a-guid"), Some(ProvisioningState::Succeeded)),
            assignment(None, Some(ProvisioningState::Succeeded)),
            assignment(Some("44444444-4444-4444-8444-444444444444"), None),
            RegistrationAssignment::new("no-status", spec()),
        ];
        let named = |t: &str| delegated(&assignments, &Guid::parse(t).expect("guid"));
        assert!(named(T1) && named(T2), "Succeeded assignments name their tenants, whatever the case");
        for t in [
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222",
            "33333333-3333-4333-8333-333333333333",
            "44444444-4444-4444-8444-444444444444",
            "55555555-5555-4555-8555-555555555555",
        ] {
            assert!(!named(t), "{t} is named by no delegation in force");
        }
    }

    #[test]
    fn the_prefetched_tenants_are_those_admit_can_admit() {
        let assignments = [
            assignment(Some(T1), Some(ProvisioningState::Succeeded)),
            assignment(Some(&T2.to_ascii_uppercase()), Some(ProvisioningState::Succeeded)),
            assignment(Some(T2), Some(ProvisioningState::Succeeded)),
            assignment(Some("11111111-1111-4111-8111-111111111111"), Some(ProvisioningState::Failed)),
            assignment(Some("not-a-guid"), Some(ProvisioningState::Succeeded)),
            assignment(None, Some(ProvisioningState::Succeeded)),
        ];
        let guid = |t: &str| Guid::parse(t).expect("guid");
        assert_eq!(prefetched(&assignments, None), BTreeSet::from([guid(T1), guid(T2)]));
        let allowed = BTreeSet::from([T2.to_owned(), "11111111-1111-4111-8111-111111111111".to_owned()]);
        assert_eq!(prefetched(&assignments, Some(&allowed)), BTreeSet::from([guid(T2)]), "the allow-list narrows");
        // The same set as admit: a tenant is prefetched exactly when a token of it may be admitted.
        for t in [T1, T2, "11111111-1111-4111-8111-111111111111"] {
            let own = authority(DEFAULT_AUTHORITY, &guid(t));
            let admitted =
                admit(&claimed(Some(t), Some(&own)), |g| delegated(&assignments, g), Some(&allowed), DEFAULT_AUTHORITY);
            assert_eq!(admitted.is_ok(), prefetched(&assignments, Some(&allowed)).contains(&guid(t)), "{t}");
        }
    }

    #[test]
    fn keys_are_fetched_ahead_at_most_once_per_interval() {
        const TIMES: RefreshTimes =
            RefreshTimes { min_interval: Duration::from_secs(10), period: Duration::from_secs(3600) };
        let s = |fetched: Option<u64>, tried: Option<u64>, wanted| KeysState {
            fetched: fetched.map(Duration::from_secs),
            tried: tried.map(Duration::from_secs),
            wanted,
        };
        assert!(refresh_due(s(None, None, false), &TIMES), "a newly delegated tenant: at once");
        assert!(!refresh_due(s(None, Some(3), false), &TIMES), "a failed fetch is not retried within the interval");
        assert!(refresh_due(s(None, Some(10), false), &TIMES), "then it is");
        assert!(!refresh_due(s(Some(60), Some(60), false), &TIMES), "fresh keys stay");
        assert!(refresh_due(s(Some(60), Some(60), true), &TIMES), "an unknown key ID refetches");
        assert!(!refresh_due(s(Some(2), Some(2), true), &TIMES), "but not within the interval, however often asked");
        assert!(refresh_due(s(Some(3600), Some(3600), false), &TIMES), "old keys are refetched unasked");
    }

    fn claimed(tid: Option<&str>, iss: Option<&str>) -> Claimed {
        Claimed { tid: tid.map(str::to_owned), iss: iss.map(str::to_owned) }
    }

    #[test]
    fn only_delegated_allowed_tenants_from_their_own_authority_are_admitted() {
        let tenants = BTreeSet::from([T1.to_owned(), T2.to_owned()]);
        let delegated = |t: &Guid| tenants.contains(t.as_str());
        let own = authority(DEFAULT_AUTHORITY, &Guid::parse(T1).expect("guid"));
        assert_eq!(own, format!("https://login.microsoftonline.com/{T1}/v2.0"));
        let admitted = admit(&claimed(Some(T1), Some(&own)), delegated, None, DEFAULT_AUTHORITY);
        assert_eq!(admitted, Ok((Guid::parse(T1).expect("guid"), own.clone())));
        let undelegated = "11111111-1111-4111-8111-111111111111";
        let theirs = format!("https://login.microsoftonline.com/{undelegated}/v2.0");
        let cases = [
            (claimed(None, Some(&own)), Refusal::Malformed),
            (claimed(Some("x"), Some(&own)), Refusal::Malformed),
            (claimed(Some(undelegated), Some(&theirs)), Refusal::TenantNotDelegated),
            // Tenant A's token claiming tenant B's issuer, or B's tid under A's issuer.
            (claimed(Some(T2), Some(&own)), Refusal::IssuerMismatch),
            (claimed(Some(T1), None), Refusal::IssuerMismatch),
            (claimed(Some(T1), Some(&format!("{own}/"))), Refusal::IssuerMismatch),
            (claimed(Some(T1), Some("https://sts.windows.net/x/")), Refusal::IssuerMismatch),
        ];
        for (c, refusal) in cases {
            assert_eq!(admit(&c, delegated, None, DEFAULT_AUTHORITY), Err(refusal), "{c:?}");
        }
        let allowed = BTreeSet::from([T2.to_owned()]);
        assert_eq!(
            admit(&claimed(Some(T1), Some(&own)), delegated, Some(&allowed), DEFAULT_AUTHORITY),
            Err(Refusal::TenantNotAllowed)
        );
        // The allow-list narrows; it never adds a tenant no delegation names.
        let allowed = BTreeSet::from([undelegated.to_owned()]);
        assert_eq!(
            admit(&claimed(Some(undelegated), Some(&theirs)), delegated, Some(&allowed), DEFAULT_AUTHORITY),
            Err(Refusal::TenantNotDelegated)
        );
    }

    fn subject(exp: i64) -> SubjectClaims {
        SubjectClaims {
            tid: T1.to_owned(),
            oid: "o1".to_owned(),
            groups: vec!["g1".to_owned()],
            amr: vec!["pwd".to_owned(), "mfa".to_owned()],
            exp,
        }
    }

    const ISSUANCE: Issuance<'static> =
        Issuance { issuer: "https://lh.example/federation", audience: "kube-lighthouse", max_lifetime: 900 };

    #[test]
    fn issued_tokens_carry_the_identity_and_live_at_most_the_maximum_and_the_subjects_life() {
        let tenant = Guid::parse(T1).expect("guid");
        let issued = issue(&subject(10_000), &tenant, 1_000, &ISSUANCE, "j".into()).expect("issued");
        assert_eq!(issued.sub, format!("{T1}:o1"));
        assert_eq!((issued.tid.as_str(), issued.oid.as_str()), (T1, "o1"));
        assert_eq!(issued.groups, ["g1"]);
        assert_eq!(issued.amr, ["pwd", "mfa"]);
        assert_eq!((issued.iss.as_str(), issued.aud.as_str()), (ISSUANCE.issuer, ISSUANCE.audience));
        assert_eq!((issued.iat, issued.nbf, issued.exp), (1_000, 1_000, 1_900), "the maximum lifetime");
        let issued = issue(&subject(1_100), &tenant, 1_000, &ISSUANCE, "j".into()).expect("issued");
        assert_eq!(issued.exp, 1_100, "never past the subject token's expiry");
        assert_eq!(issue(&subject(1_000), &tenant, 1_000, &ISSUANCE, "j".into()), Err(Refusal::Expired));
        assert_eq!(issue(&subject(900), &tenant, 1_000, &ISSUANCE, "j".into()), Err(Refusal::Expired));
    }

    #[test]
    fn issued_tenant_and_object_ids_are_lower_case() {
        let tenant = Guid::parse(T1).expect("guid");
        let oid = "6F1A3B5C-ABCD-4000-8000-00000000000A";
        let s = SubjectClaims { tid: T1.to_ascii_uppercase(), oid: oid.into(), ..subject(10_000) };
        let issued = issue(&s, &tenant, 1_000, &ISSUANCE, "j".into()).expect("issued");
        let lower = oid.to_ascii_lowercase();
        assert_eq!((issued.tid.as_str(), issued.oid.as_str()), (T1, lower.as_str()));
        assert_eq!(issued.sub, format!("{T1}:{lower}"), "the RBAC name is case-sensitive");
    }

    #[test]
    fn a_token_of_one_tenant_never_yields_another() {
        let other = Guid::parse(T2).expect("guid");
        assert_eq!(issue(&subject(10_000), &other, 1_000, &ISSUANCE, "j".into()), Err(Refusal::Malformed));
        let tenant = Guid::parse(T1).expect("guid");
        for oid in ["", " ", "x:y"] {
            let s = SubjectClaims { oid: oid.into(), ..subject(10_000) };
            assert_eq!(issue(&s, &tenant, 1_000, &ISSUANCE, "j".into()), Err(Refusal::Malformed), "{oid:?}");
        }
    }

    #[test]
    fn every_refusal_has_a_distinct_label() {
        let all = [
            Refusal::Malformed,
            Refusal::TenantNotDelegated,
            Refusal::TenantNotAllowed,
            Refusal::IssuerMismatch,
            Refusal::UnknownKey,
            Refusal::BadSignature,
            Refusal::Expired,
            Refusal::NotYetValid,
            Refusal::WrongAudience,
            Refusal::AuthorityUnavailable,
        ];
        let labels: BTreeSet<&str> = all.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), all.len());
        assert!(labels.contains("tenant_not_delegated"));
    }

    #[test]
    fn discovery_names_the_keys_and_the_token_endpoint() {
        let d = discovery("https://lh.example/federation", "ES256");
        assert_eq!(d["issuer"], "https://lh.example/federation");
        assert_eq!(d["jwks_uri"], "https://lh.example/federation/keys");
        assert_eq!(d["token_endpoint"], "https://lh.example/federation/token");
        assert_eq!(d["grant_types_supported"][0], GRANT_TYPE_TOKEN_EXCHANGE);
        assert_eq!(d["id_token_signing_alg_values_supported"][0], "ES256");
    }

    #[test]
    fn issuer_urls_and_templates_are_checked() {
        assert!(check_issuer("https://lh.example/federation").is_ok());
        assert!(check_issuer("https://127.0.0.1:9443/federation").is_ok());
        for bad in [
            "http://lh.example/federation",
            "https://lh.example/federation/",
            "https://lh.example",
            "https://lh.example/federation?x",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
        assert!(check_template(DEFAULT_AUTHORITY).is_ok());
        for bad in
            ["https://login.microsoftonline.com/common/v2.0", "http://x/{tenantId}", "https://x/{tenantId}/{tenantId}"]
        {
            assert!(check_template(bad).is_err(), "{bad}");
        }
    }
}
