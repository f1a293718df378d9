//! SPEC §3 rule 2 for an assignment: it lies in a subscription or one of its resource groups,
//! its definition exists and is valid, and no older assignment of the same definition holds
//! the same scope. The definition itself is validated on its own.

use super::text::quoted;
use super::{Rejection, Rule};
use crate::model::scope::{self, Namespaces, ScopeError};

/// An assignment, and the other assignments of its namespace.
pub struct AssignmentFacts<'a> {
    /// The namespace the assignment lives in: its scope.
    pub namespace: &'a str,
    /// The assignment's name.
    pub name: &'a str,
    /// `spec.registrationDefinitionRef.name`.
    pub definition_name: &'a str,
    /// Names of assignments in the same namespace, created before this one, that assign the
    /// same definition.
    pub older_duplicates: Vec<String>,
}

/// SPEC §3 rule 2 for an assignment: returns its scope. The definition is validated on its own.
///
/// # Errors
/// A [`Rejection`] for [`Rule::InvalidScope`] when the namespace is not a subscription or a
/// resource group of one, or [`Rule::DuplicateAssignment`] when an older assignment already
/// assigns the definition here.
pub fn validate_assignment(
    facts: &AssignmentFacts<'_>,
    namespaces: &dyn Namespaces,
) -> Result<scope::Scope, Rejection> {
    let scope = scope::resolve(facts.namespace, namespaces)
        .map_err(|e: ScopeError| Rejection::single(Rule::InvalidScope, "metadata.namespace", e.to_string()))?;
    if let Some(first) = facts.older_duplicates.first() {
        return Err(Rejection::single(
            Rule::DuplicateAssignment,
            "spec.registrationDefinitionRef.name",
            format!(
                "definition {} is already assigned to {} by assignment {first}",
                facts.definition_name, facts.namespace
            ),
        ));
    }
    Ok(scope)
}

/// The rejection of an assignment whose definition is missing or invalid.
pub fn definition_problem(definition: &str, subscription: &str, rejection: Option<&Rejection>) -> Rejection {
    match rejection {
        None => Rejection::single(
            Rule::DefinitionNotFound,
            "spec.registrationDefinitionRef.name",
            format!("no RegistrationDefinition {} in subscription namespace {subscription}", quoted(definition)),
        ),
        Some(r) => Rejection::single(
            Rule::DefinitionInvalid,
            "spec.registrationDefinitionRef.name",
            format!("definition {subscription}/{definition} is rejected: {r}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- assignments ------------------------------------------------------------------------------

    fn assignment<'a>(namespace: &'a str, older: &[&str]) -> AssignmentFacts<'a> {
        AssignmentFacts {
            namespace,
            name: "contoso-msp",
            definition_name: "contoso-msp",
            older_duplicates: older.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn assignments_outside_a_subscription_are_refused() {
        let ns = namespaces();
        for (namespace, in_message) in [
            ("plain", "neither a subscription"),
            ("missing", "does not exist"),
            ("orphan-rg", "nowhere"),
            ("bad-tenant", "not a GUID"),
        ] {
            let r = validate_assignment(&assignment(namespace, &[]), &ns).expect_err("not a delegation scope");
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
                [(Rule::InvalidScope, "metadata.namespace")],
                "{namespace}"
            );
            assert!(r.0[0].message.contains(in_message), "{namespace}: {r}");
            assert_eq!(r.reason(), "InvalidScope");
        }
    }

    #[test]
    fn a_second_assignment_of_a_definition_at_one_scope_is_refused() {
        let ns = namespaces();
        let r = validate_assignment(&assignment("customer-a-web", &["first", "second"]), &ns).expect_err("duplicate");
        assert_eq!(
            r.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
            [(Rule::DuplicateAssignment, "spec.registrationDefinitionRef.name")]
        );
        assert!(r.0[0].message.contains("by assignment first"), "{r}");
    }

    #[test]
    fn assignment_scopes() {
        let ns = namespaces();
        let rg = validate_assignment(&assignment("customer-a-web", &[]), &ns).expect("valid");
        assert_eq!(rg.namespaces, ["customer-a-web"]);
        assert_eq!(rg.subscription, "customer-a");
        assert_eq!(rg.home_tenant.as_str(), CUSTOMER);
        let s = validate_assignment(&assignment("customer-a", &[]), &ns).expect("valid");
        assert_eq!(s.namespaces, ["customer-a", "customer-a-db", "customer-a-web"]);
    }

    #[test]
    fn an_assignment_without_a_valid_definition_is_refused() {
        let missing = definition_problem("contoso-msp", "customer-a", None);
        assert_eq!(
            missing.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
            [(Rule::DefinitionNotFound, "spec.registrationDefinitionRef.name")]
        );
        assert!(missing.to_string().contains("customer-a"));

        let inner = rejection(World::new().validate(&spec(vec![auth(P1, OWNER)])));
        let invalid = definition_problem("contoso-msp", "customer-a", Some(&inner));
        assert_eq!(
            invalid.0.iter().map(|e| (e.rule, e.field.as_str())).collect::<Vec<_>>(),
            [(Rule::DefinitionInvalid, "spec.registrationDefinitionRef.name")]
        );
        let text = invalid.to_string();
        assert!(text.contains("customer-a/contoso-msp"), "{text}");
        assert!(text.contains("spec.authorizations[0].roleDefinitionId"), "{text}");
        assert!(text.contains("(OwnerRole)"), "{text}");
    }
}
