//! Every catalog role, materialized, grants what SPEC §4 says and not one step more: for each,
//! a permission it must give is allowed, and permissions just outside it are refused by the
//! API server's own authorizer (SubjectAccessReview), in the delegated namespace.

mod common;

use common::*;

const LOG_ANALYTICS: &str = "92aaf0da-9dab-42b6-94a3-d43ce8d16293";
const RESOURCE_POLICY: &str = "36243c78-bf99-498c-9df9-86d9f8d28608";
const VIRTUAL_MACHINE: &str = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c";
const UAA: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";

/// (verb, `resource[.group][/subresource]`, name or "").
type Ask = (&'static str, &'static str, &'static str);

struct Case {
    role: &'static str,
    principal: &'static str,
    allowed: &'static [Ask],
    refused: &'static [Ask],
}

const RBAC_WRITES: [Ask; 4] = [
    ("create", "rolebindings.rbac.authorization.k8s.io", ""),
    ("delete", "rolebindings.rbac.authorization.k8s.io", "customer-admins"),
    ("create", "roles.rbac.authorization.k8s.io", ""),
    ("escalate", "roles.rbac.authorization.k8s.io", ""),
];

const CASES: &[Case] = &[
    Case {
        role: READER,
        principal: "00000000-0000-0000-0000-00000000f001",
        allowed: &[("list", "pods", ""), ("get", "configmaps", "")],
        refused: &[("get", "secrets", ""), ("create", "pods", ""), ("create", "pods/exec", ""), ("delete", "pods", "")],
    },
    Case {
        role: CONTRIBUTOR,
        principal: "00000000-0000-0000-0000-00000000f002",
        allowed: &[("create", "deployments.apps", ""), ("create", "secrets", ""), ("delete", "secrets", "")],
        refused: &[
            ("get", "secrets", ""),
            ("list", "secrets", ""),
            ("update", "secrets", "s"),
            ("patch", "secrets", "s"),
            ("deletecollection", "secrets", ""),
            ("create", "pods/exec", ""),
            ("create", "pods/portforward", ""),
            ("create", "serviceaccounts/token", ""),
            ("delete", "namespaces", ""),
            ("create", "registrationassignments.managedservices.kubelighthouse.io", ""),
        ],
    },
    Case {
        role: DELETE_ROLE,
        principal: "00000000-0000-0000-0000-00000000f003",
        allowed: &[
            ("delete", "registrationassignments.managedservices.kubelighthouse.io", "granting"),
            ("get", "registrationassignments.managedservices.kubelighthouse.io", "granting"),
        ],
        refused: &[
            ("delete", "registrationassignments.managedservices.kubelighthouse.io", "neighbour"),
            ("get", "registrationassignments.managedservices.kubelighthouse.io", "neighbour"),
            ("update", "registrationassignments.managedservices.kubelighthouse.io", "granting"),
            ("patch", "registrationassignments.managedservices.kubelighthouse.io", "granting"),
            ("deletecollection", "registrationassignments.managedservices.kubelighthouse.io", ""),
            ("delete", "registrationdefinitions.managedservices.kubelighthouse.io", "delegation"),
            ("list", "pods", ""),
        ],
    },
    Case {
        role: UAA,
        principal: "00000000-0000-0000-0000-00000000f004",
        allowed: &[("create", "rolebindings.rbac.authorization.k8s.io", "")],
        refused: &[
            ("delete", "rolebindings.rbac.authorization.k8s.io", "customer-admins"),
            ("update", "rolebindings.rbac.authorization.k8s.io", "customer-admins"),
            ("patch", "rolebindings.rbac.authorization.k8s.io", "customer-admins"),
            ("deletecollection", "rolebindings.rbac.authorization.k8s.io", ""),
            ("list", "rolebindings.rbac.authorization.k8s.io", ""),
            ("bind", "clusterroles.rbac.authorization.k8s.io", "admin"),
            ("escalate", "roles.rbac.authorization.k8s.io", ""),
            ("create", "roles.rbac.authorization.k8s.io", ""),
            ("list", "pods", ""),
        ],
    },
    Case {
        role: LOG_ANALYTICS,
        principal: "00000000-0000-0000-0000-00000000f005",
        allowed: &[("get", "pods/log", ""), ("create", "servicemonitors.monitoring.coreos.com", "")],
        refused: &[
            ("create", "pods", ""),
            ("get", "secrets", ""),
            ("get", "configmaps", ""),
            ("create", "pods/exec", ""),
            ("delete", "events", ""),
        ],
    },
    Case {
        role: RESOURCE_POLICY,
        principal: "00000000-0000-0000-0000-00000000f006",
        allowed: &[("create", "networkpolicies.networking.k8s.io", ""), ("update", "resourcequotas", "q")],
        refused: &[
            ("create", "pods", ""),
            ("get", "secrets", ""),
            ("update", "resourcequotas/status", "q"),
            ("delete", "namespaces", ""),
        ],
    },
    Case {
        role: VIRTUAL_MACHINE,
        principal: "00000000-0000-0000-0000-00000000f007",
        allowed: &[("create", "pods", ""), ("update", "deployments.apps/scale", "web")],
        refused: &[
            ("get", "configmaps", ""),
            ("get", "services", ""),
            ("get", "secrets", ""),
            ("create", "pods/exec", ""),
            ("create", "pods/attach", ""),
            ("create", "serviceaccounts", ""),
        ],
    },
];

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn every_catalog_role_refuses_what_lies_just_outside_it() {
    // The real binary with its webhook registered: User Access Administrator is in force only
    // while the webhook guards RoleBindings (docs/roles.md), and its case is judged here.
    let path = kubeconfig();
    let client = client_for(&path).await;
    let _deployed = common::webhook::Deployed::start(&path, true);
    let sub = unique("least");
    subscription(&client, &sub, &tenant_id()).await;
    let authorizations = CASES
        .iter()
        .map(|c| {
            let mut a = authorization(c.principal, "User", c.role);
            if c.role == UAA {
                a["delegatedRoleDefinitionIds"] = serde_json::json!([READER]);
            }
            a
        })
        .collect();
    definition(&client, &sub, "delegation", MSP_TENANT, authorizations).await;
    assignment(&client, &sub, "granting", "delegation").await;
    // A neighbour the Delete role must not reach: another offer's assignment.
    definition(&client, &sub, "other-offer", OTHER_MSP_TENANT, vec![authorization(CASES[0].principal, "User", READER)])
        .await;
    assignment(&client, &sub, "neighbour", "other-offer").await;
    wait_for_assignment_state(&client, &sub, "granting", "Succeeded").await;
    wait_for_assignment_state(&client, &sub, "neighbour", "Succeeded").await;

    for case in CASES {
        let user = projected(MSP_TENANT, case.principal);
        let refused = case.refused.iter().chain(if case.role == UAA || case.role == DELETE_ROLE {
            &[][..]
        } else {
            &RBAC_WRITES[..]
        });
        for (asks, expected) in [(case.allowed.iter().chain(&[][..]), true), (refused, false)] {
            for (verb, resource, name) in asks {
                let what = Access { name, ..access(verb, resource, &sub) };
                let got = allowed(&client, &user, &[], &what).await;
                if got != expected {
                    // Grants arrive shortly after Succeeded on a loaded machine: wait once.
                    expect_access(&client, &user, &[], what, expected).await;
                }
            }
        }
    }
}
