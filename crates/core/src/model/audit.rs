//! The audit (docs/guardrails.md), Azure's built-in "Audit delegation of scopes to a managing
//! tenant": every delegation of a namespace judged against the guardrails, as the content of
//! one `PolicyReport` (`wgpolicyk8s.io/v1alpha2`, the Policy Working Group's format, which
//! Kyverno's Policy Reporter shows) per namespace holding definitions. Pure: the shell
//! ([`crate::controller::audit`]) gathers the entries and writes the report.
//!
//! Every delegation appears: one result per guardrail that governs its namespace (`pass`, or
//! one `fail` per finding, naming the guardrail's field and the definition's), and a `skip`
//! result when no guardrail governs it, so a platform team sees what is not covered too.

use serde_json::{json, Value};

use super::guardrail::{Finding, Guardrails};

/// The report's name in each namespace.
pub const REPORT_NAME: &str = "kube-lighthouse-guardrails";
/// `results[].source`.
pub const SOURCE: &str = "kube-lighthouse";
/// The API version of the reports.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";

/// One definition of the namespace and what the audit knows of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The definition's name and uid.
    pub definition: (String, String),
    /// `spec.managedByTenantId`.
    pub managing_tenant: String,
    /// Its assignments, as (namespace, name, uid): the delegations it is assigned by.
    pub assignments: Vec<(String, String, String)>,
    /// The guardrails that govern its namespace, by name.
    pub governing: Vec<String>,
    /// What they forbid in it ([`super::guardrail::findings`]).
    pub findings: Vec<Finding>,
}

impl Entry {
    /// The entry of a definition named `definition` in a namespace labelled `labels`.
    pub fn new(
        definition: (String, String),
        spec: &crate::api::RegistrationDefinitionSpec,
        assignments: Vec<(String, String, String)>,
        guardrails: &Guardrails,
        labels: &std::collections::BTreeMap<String, String>,
        catalog: &super::catalog::Catalog,
    ) -> Entry {
        Entry {
            definition,
            managing_tenant: spec.managed_by_tenant_id.clone(),
            assignments,
            governing: guardrails.governing(labels).map(|g| g.name.clone()).collect(),
            findings: super::guardrail::findings(guardrails, labels, spec, catalog),
        }
    }
}

fn resources(namespace: &str, entry: &Entry) -> Value {
    let (name, uid) = &entry.definition;
    let mut out = vec![json!({
        "apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationDefinition",
        "namespace": namespace, "name": name, "uid": uid,
    })];
    out.extend(entry.assignments.iter().map(|(ns, name, uid)| {
        json!({"apiVersion": "managedservices.kubelighthouse.io/v1alpha1", "kind": "RegistrationAssignment",
               "namespace": ns, "name": name, "uid": uid})
    }));
    Value::Array(out)
}

/// The PolicyReport of `namespace` for `entries` (sorted by definition name), stamped
/// `seconds` (Unix time, when its content last changed). Every result names the definition
/// and its assignments as resources.
pub fn policy_report(namespace: &str, entries: &[Entry], seconds: i64) -> Value {
    let mut results = Vec::new();
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    let result = |policy: &str, rule: &str, verdict: &str, message: String, entry: &Entry, properties: Value| {
        json!({
            "source": SOURCE, "policy": policy, "rule": rule, "result": verdict, "message": message,
            "category": "Azure Lighthouse", "severity": if verdict == "fail" { "high" } else { "low" },
            "scored": true, "timestamp": {"seconds": seconds, "nanos": 0},
            "resources": resources(namespace, entry), "properties": properties,
        })
    };
    for entry in entries {
        let definition = &entry.definition.0;
        let tenant = json!({"managedByTenantId": entry.managing_tenant});
        if entry.governing.is_empty() {
            skip += 1;
            let message = format!("no guardrail governs namespace {namespace}: definition {definition} is not judged");
            results.push(result(REPORT_NAME, "Governed", "skip", message, entry, tenant.clone()));
        }
        for guardrail in &entry.governing {
            let mine: Vec<&Finding> = entry.findings.iter().filter(|f| &f.guardrail == guardrail).collect();
            if mine.is_empty() {
                pass += 1;
                let message = format!("guardrail \"{guardrail}\" allows definition {definition}");
                results.push(result(guardrail, "Allowed", "pass", message, entry, tenant.clone()));
            }
            for f in mine {
                fail += 1;
                let properties = json!({"managedByTenantId": entry.managing_tenant, "field": f.field,
                                        "guardrailField": f.guardrail_field});
                let message = format!("definition {definition}, {}: {}", f.field, f.message);
                results.push(result(guardrail, f.rule.reason(), "fail", message, entry, properties));
            }
        }
    }
    json!({
        "apiVersion": API_VERSION, "kind": "PolicyReport",
        "metadata": {"name": REPORT_NAME, "namespace": namespace,
                     "labels": {super::keys::MANAGED_BY: super::keys::MANAGER}},
        "summary": {"pass": pass, "fail": fail, "warn": 0, "error": 0, "skip": skip},
        "results": results,
    })
}

/// What two reports are compared by: the summary, and each result's policy, rule, verdict,
/// message, properties and resources (kind, namespace, name, uid); not the timestamps, nor
/// what a server adds or drops. The shell writes a report only when this differs from the one
/// stored, so a restart writes nothing.
pub fn content(report: &Value) -> String {
    let results: Vec<Value> = report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let resources: Vec<Value> = r["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| json!([o["kind"], o["namespace"], o["name"], o["uid"]]))
                .collect();
            json!([r["policy"], r["rule"], r["result"], r["message"], r["properties"], resources])
        })
        .collect();
    json!([report["summary"], results]).to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{Authorization, GuardrailSpec, RegistrationDefinitionSpec};
    use crate::model::catalog::Catalog;
    use crate::model::guardrail::NamedGuardrail;

    const MSP: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
    const OTHER: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    fn spec(tenant: &str) -> RegistrationDefinitionSpec {
        RegistrationDefinitionSpec {
            registration_definition_name: "Offer".into(),
            description: None,
            managed_by_tenant_id: tenant.into(),
            authorizations: vec![Authorization {
                principal_id: "00000000-0000-0000-0000-0000000000a1".into(),
                principal_id_display_name: None,
                principal_type: None,
                role_definition_id: "acdd72a7-3385-48ef-bd42-f606fba81ae7".into(),
                delegated_role_definition_ids: Vec::new(),
            }],
            eligible_authorizations: Vec::new(),
            plan: None,
        }
    }

    fn entry(name: &str, tenant: &str, guardrails: &Guardrails) -> Entry {
        let assignment = ("sub-web".to_string(), name.to_string(), format!("{name}-a-uid"));
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        Entry::new(
            (name.into(), format!("{name}-uid")),
            &spec(tenant),
            vec![assignment],
            guardrails,
            &labels,
            &Catalog::default(),
        )
    }

    fn results(report: &Value) -> Vec<(String, String, String)> {
        report["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (s("policy"), s("rule"), s("result"))
            })
            .collect()
    }

    #[test]
    fn every_delegation_gets_a_result_per_governing_guardrail_and_each_finding_fails() {
        let guardrails = Guardrails::new(vec![
            NamedGuardrail {
                name: "msp-only".into(),
                spec: GuardrailSpec { allowed_managing_tenant_ids: Some(vec![MSP.into()]), ..Default::default() },
            },
            NamedGuardrail { name: "open".into(), spec: GuardrailSpec::default() },
        ]);
        let entries = [entry("good", MSP, &guardrails), entry("bad", OTHER, &guardrails)];
        let report = policy_report("sub", &entries, 42);
        assert_eq!(
            results(&report),
            [
                ("msp-only", "Allowed", "pass"),
                ("open", "Allowed", "pass"),
                ("msp-only", "GuardrailTenantNotAllowed", "fail"),
                ("open", "Allowed", "pass"),
            ]
            .map(|(p, r, v)| (p.to_string(), r.to_string(), v.to_string()))
        );
        assert_eq!(report["summary"], json!({"pass": 3, "fail": 1, "warn": 0, "error": 0, "skip": 0}));
        let failed = &report["results"][2];
        assert_eq!(failed["properties"]["field"], "spec.managedByTenantId");
        assert_eq!(failed["properties"]["guardrailField"], "spec.allowedManagingTenantIds");
        let kinds: Vec<&str> =
            failed["resources"].as_array().expect("resources").iter().filter_map(|r| r["kind"].as_str()).collect();
        assert_eq!(kinds, ["RegistrationDefinition", "RegistrationAssignment"]);
        assert_eq!(report["metadata"]["namespace"], "sub");
    }

    #[test]
    fn reports_that_differ_only_in_their_stamps_and_server_fields_have_the_same_content() {
        let guardrails = Guardrails::new(vec![NamedGuardrail {
            name: "msp-only".into(),
            spec: GuardrailSpec { allowed_managing_tenant_ids: Some(vec![MSP.into()]), ..Default::default() },
        }]);
        let entries = [entry("bad", OTHER, &guardrails)];
        let mut stored = policy_report("sub", &entries, 1_700_000_000);
        stored["metadata"]["resourceVersion"] = json!("42");
        stored["results"][0]["scored"] = Value::Null;
        assert_eq!(content(&stored), content(&policy_report("sub", &entries, 0)));
        let passing = [entry("bad", MSP, &guardrails)];
        assert_ne!(content(&stored), content(&policy_report("sub", &passing, 0)));
    }

    #[test]
    fn an_ungoverned_delegation_is_skipped_not_left_out() {
        let report = policy_report("sub", &[entry("free", OTHER, &Guardrails::default())], 0);
        assert_eq!(results(&report), [(REPORT_NAME.to_string(), "Governed".to_string(), "skip".to_string())]);
        assert_eq!(report["summary"]["skip"], 1);
    }
}
