//! SPEC §3 rule 4 (seed 003): how many definitions a subscription namespace holds and how many
//! authorizations a definition holds; at least one, at most the configured [`Limits`].

use super::{DefinitionFacts, FieldError, Findings, Limits, Rule};

/// Records every limit `facts` exceeds.
pub(super) fn check(facts: &DefinitionFacts<'_>, limits: &Limits, findings: &mut Findings) {
    let authorizations = facts.spec.authorizations.len();
    if facts.older_definitions >= limits.max_definitions_per_subscription {
        findings.errors.push(FieldError::new(
            Rule::TooManyDefinitions,
            "metadata.namespace",
            format!(
                "{} already holds {} definitions; the limit is {}",
                facts.namespace, facts.older_definitions, limits.max_definitions_per_subscription
            ),
        ));
    }
    if authorizations > limits.max_authorizations_per_definition {
        findings.errors.push(FieldError::new(
            Rule::TooManyAuthorizations,
            "spec.authorizations",
            format!("{authorizations} authorizations; the limit is {}", limits.max_authorizations_per_definition),
        ));
    }
    if authorizations == 0 {
        findings.errors.push(FieldError::new(
            Rule::InvalidPrincipalId,
            "spec.authorizations",
            "at least one authorization is required",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::model::validate::fixtures::*;

    // --- rule 4: limits ---------------------------------------------------------------------------

    #[test]
    fn default_limits_are_those_of_azure() {
        assert_eq!(
            Limits::default(),
            Limits { max_definitions_per_subscription: 200, max_authorizations_per_definition: 400 }
        );
    }

    #[test]
    fn too_many_definitions_in_one_subscription() {
        for limits in [Limits::default(), Limits { max_definitions_per_subscription: 3, ..Limits::default() }] {
            let mut w = World::new();
            let max = limits.max_definitions_per_subscription;
            w.limits = limits;
            let s = spec(vec![auth(P1, READER)]);
            let facts = |older| DefinitionFacts { older_definitions: older, ..fresh("customer-a", &s) };
            assert!(w.validate_facts(&facts(0)).is_ok());
            assert!(w.validate_facts(&facts(max - 1)).is_ok(), "{max}");
            for older in [max, max + 1] {
                let r = rejection(w.validate_facts(&facts(older)));
                assert_eq!(
                    r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                    one(Rule::TooManyDefinitions, "metadata.namespace"),
                    "{older}/{max}"
                );
                assert!(r.0[0].message.contains(&format!("the limit is {max}")));
            }
        }
    }

    fn many_authorizations(n: usize) -> Vec<Authorization> {
        (0..n).map(|i| auth(&format!("00000000-0000-0000-0000-{i:012x}"), READER)).collect()
    }

    #[test]
    fn too_many_authorizations_in_one_definition() {
        for max in [2, 400] {
            let mut w = World::new();
            w.limits.max_authorizations_per_definition = max;
            let ok = valid(w.validate(&spec(many_authorizations(max))));
            assert_eq!(
                grant(&ok, "kubelighthouse:reader").subjects.len(),
                2 * max,
                "untyped principals bind a User and a Group each"
            );
            let r = rejection(w.validate(&spec(many_authorizations(max + 1))));
            assert_eq!(
                r.0.iter().map(|e| (e.rule, e.field.clone())).collect::<Vec<_>>(),
                one(Rule::TooManyAuthorizations, "spec.authorizations"),
                "{max}"
            );
            assert_eq!(r.0[0].message, format!("{} authorizations; the limit is {max}", max + 1));
        }
    }

    #[test]
    fn a_definition_needs_an_authorization() {
        let w = World::new();
        assert_eq!(errors(w.validate(&spec(Vec::new()))), one(Rule::InvalidPrincipalId, "spec.authorizations"));
    }
}
