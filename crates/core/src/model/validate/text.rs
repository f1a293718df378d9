//! Free text of a definition (display names, description, plan), and how any value a user
//! wrote is quoted back in a message.
//!
//! SPEC §3 is silent on free text; issue 19 asks that malformed values be refused naming the
//! field. Free text is shown to other people: by `kubectl get`, the views ("My customers"),
//! the plugin's tables, Events. So it may hold any language's letters, but not control
//! characters nor the bidirectional formatting characters that make a terminal show text in
//! another order than it is stored ("Trojan Source", CVE-2021-42574), and it has a length
//! limit. The CRD schema carries the same limits (`maxLength`), so the API server refuses an
//! oversized value before anything stores it; this rule refuses what the schema cannot say,
//! and anything stored before the schema said it.

use super::{FieldError, Findings, Rule};
use crate::api::RegistrationDefinitionSpec;

/// Longest `registrationDefinitionName`, display name or plan field, in characters.
pub const MAX_NAME: usize = 256;
/// Longest `description`, in characters.
pub const MAX_DESCRIPTION: usize = 2048;
/// Characters of a user's value a message quotes before eliding the rest.
const QUOTED: usize = 64;

/// `value` as a message quotes it: escaped as a Rust string literal (control and
/// bidirectional formatting characters become `\u{…}`, so a message never reorders a
/// terminal), and cut after 64 characters with the full length said.
pub fn quoted(value: &str) -> String {
    let count = value.chars().count();
    if count <= QUOTED {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(QUOTED).collect();
    format!("{head:?}… ({count} characters)")
}

/// Whether `c` must not appear in free text: a control character (C0, DEL, C1), or a
/// bidirectional formatting character (Unicode's Bidi_Control property: ALM, LRM, RLM,
/// LRE…RLO, LRI…PDI).
fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The verdict on one free-text field: at most `max` characters, no forbidden character,
/// and not blank when `required`.
fn judge(value: &str, field: &str, max: usize, required: bool) -> Result<(), FieldError> {
    let error = |message: String| Err(FieldError::new(Rule::InvalidText, field, message));
    if required && value.trim().is_empty() {
        return error("must not be empty".into());
    }
    let count = value.chars().count();
    if count > max {
        return error(format!("{count} characters; at most {max}"));
    }
    if let Some((at, c)) = value.chars().enumerate().find(|(_, c)| is_forbidden(*c)) {
        return error(format!(
            "{} holds U+{:04X} at character {at}: control and bidirectional formatting characters are not allowed",
            quoted(value),
            u32::from(c)
        ));
    }
    Ok(())
}

/// Every free-text field of `spec`, in field order.
pub(super) fn check(spec: &RegistrationDefinitionSpec, findings: &mut Findings) {
    let mut judged = |value: &str, field: String, max: usize, required: bool| {
        findings.passed(judge(value, &field, max, required));
    };
    judged(&spec.registration_definition_name, "spec.registrationDefinitionName".into(), MAX_NAME, true);
    if let Some(description) = &spec.description {
        judged(description, "spec.description".into(), MAX_DESCRIPTION, false);
    }
    for (i, auth) in spec.authorizations.iter().enumerate() {
        if let Some(name) = &auth.principal_id_display_name {
            judged(name, format!("spec.authorizations[{i}].principalIdDisplayName"), MAX_NAME, false);
        }
    }
    for (i, eligible) in spec.eligible_authorizations.iter().enumerate() {
        let at = format!("spec.eligibleAuthorizations[{i}]");
        if let Some(name) = &eligible.principal_id_display_name {
            judged(name, format!("{at}.principalIdDisplayName"), MAX_NAME, false);
        }
        let approvers = eligible.just_in_time_access_policy.iter().flat_map(|p| &p.managed_by_tenant_approvers);
        for (j, approver) in approvers.enumerate() {
            if let Some(name) = &approver.principal_id_display_name {
                let field = format!("{at}.justInTimeAccessPolicy.managedByTenantApprovers[{j}].principalIdDisplayName");
                judged(name, field, MAX_NAME, false);
            }
        }
    }
    if let Some(plan) = &spec.plan {
        for (key, value) in [
            ("name", &plan.name),
            ("publisher", &plan.publisher),
            ("product", &plan.product),
            ("version", &plan.version),
        ] {
            judged(value, format!("spec.plan.{key}"), MAX_NAME, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::validate::fixtures::*;

    #[test]
    fn a_short_value_is_quoted_whole_and_escaped() {
        assert_eq!(quoted("bob"), "\"bob\"");
        assert_eq!(quoted("evil\u{202E}txt"), "\"evil\\u{202e}txt\"");
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn a_long_value_is_cut_and_its_length_said() {
        let long = "é".repeat(65_536);
        let q = quoted(&long);
        assert!(q.ends_with("… (65536 characters)"), "{q}");
        assert!(q.chars().count() < 100, "{q}");
    }

    #[test]
    fn letters_of_any_language_pass() {
        for name in ["Contoso Managed Services", "Société Générale — équipe réseau", "株式会社コントソ", "Ελληνικά"]
        {
            assert_eq!(judge(name, "f", MAX_NAME, true), Ok(()), "{name}");
        }
    }

    #[test]
    fn control_and_bidirectional_characters_are_refused() {
        for c in [
            '\0', '\n', '\u{1b}', '\u{7f}', '\u{85}', '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}',
            '\u{2066}', '\u{2069}',
        ] {
            let value = format!("Contoso{c}Support");
            let e = judge(&value, "spec.registrationDefinitionName", MAX_NAME, true).expect_err("refused");
            assert_eq!((e.rule, e.field.as_str()), (Rule::InvalidText, "spec.registrationDefinitionName"));
            assert!(e.message.contains(&format!("U+{:04X} at character 7", u32::from(c))), "{}", e.message);
            assert!(!e.message.chars().any(is_forbidden), "the message quotes {c:?} raw: {}", e.message);
        }
    }

    #[test]
    fn length_is_counted_in_characters() {
        assert_eq!(judge(&"ü".repeat(MAX_NAME), "f", MAX_NAME, true), Ok(()));
        let e = judge(&"ü".repeat(MAX_NAME + 1), "f", MAX_NAME, true).expect_err("too long");
        assert_eq!(e.message, format!("{} characters; at most {MAX_NAME}", MAX_NAME + 1));
    }

    #[test]
    fn a_required_name_may_not_be_blank() {
        for blank in ["", "   ", "\u{3000}"] {
            assert!(judge(blank, "f", MAX_NAME, true).is_err(), "{blank:?}");
        }
        assert_eq!(judge("", "f", MAX_NAME, false), Ok(()));
    }

    /// The API server refuses what the schema forbids before this rule sees it: both must
    /// say the same limits.
    #[test]
    fn the_crd_schema_carries_the_same_limits() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(crate::api::RegistrationDefinition::crd()).expect("crd");
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["registrationDefinitionName"]["maxLength"], MAX_NAME);
        assert_eq!(spec["description"]["maxLength"], MAX_DESCRIPTION);
        assert_eq!(spec["authorizations"]["items"]["properties"]["principalIdDisplayName"]["maxLength"], MAX_NAME);
        for key in ["name", "publisher", "product", "version"] {
            assert_eq!(spec["plan"]["properties"][key]["maxLength"], MAX_NAME, "{key}");
        }
    }

    #[test]
    fn every_free_text_field_is_judged_where_it_is() {
        let w = World::new();
        let mut s = spec(vec![auth(P1, READER)]);
        s.description = Some("x".repeat(MAX_DESCRIPTION + 1));
        s.authorizations[0].principal_id_display_name = Some("\u{202E}nimda".into());
        s.plan = Some(crate::api::Plan {
            name: "plan".into(),
            publisher: "".into(),
            product: "p".into(),
            version: "1".into(),
        });
        assert_eq!(
            errors(w.validate(&s)),
            [
                (Rule::InvalidText, "spec.description".to_string()),
                (Rule::InvalidText, "spec.authorizations[0].principalIdDisplayName".to_string()),
                (Rule::InvalidText, "spec.plan.publisher".to_string()),
            ]
        );
    }
}
