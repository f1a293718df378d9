//! Managing tenants sign in with their own tokens (SPEC §2, "Sign-in, for real"): the API
//! server's structured authentication trusts one issuer per managing tenant and maps the
//! claims to exactly the projected identity, so a delegation grants access to the tenant's
//! real users, and to no one else: not the same object IDs from another tenant, not a token
//! that is expired, forged, or for another audience.

mod common;

use common::*;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kl_token_issuer::TokenRequest;
use kube::api::{Api, PostParams};
use kube::Client;
use kube_lighthouse::api::RegistrationAssignment;

const ENGINEERS: &str = "00000000-0000-0000-0000-0000000000a1";
const ENGINEER: &str = "00000000-0000-0000-0000-00000000e001";

async fn whoami(client: &Client) -> k8s_openapi::api::authentication::v1::UserInfo {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api.create(&PostParams::default(), &SelfSubjectReview::default()).await.expect("SelfSubjectReview");
    review.status.and_then(|s| s.user_info).expect("user info")
}

#[tokio::test]
#[ignore = "needs a cluster: hack/test.sh runs it"]
async fn managing_tenant_users_sign_in_with_their_own_tokens() {
    let client = cluster().await;
    assert!(!issuers().is_empty(), "no token issuers beside the test cluster: name them with KL_TEST_ISSUERS_DIR");
    let (sub, undelegated) = (unique("signin"), unique("signin-other"));
    subscription(&client, &sub, &tenant_id()).await;
    subscription(&client, &undelegated, &tenant_id()).await;
    definition(&client, &sub, "contoso", MSP_TENANT, vec![authorization(ENGINEERS, "Group", READER)]).await;
    assignment(&client, &sub, "contoso", "contoso").await;
    wait_for_assignment_state(&client, &sub, "contoso", "Succeeded").await;

    // The engineer's own token, shaped like Entra ID's, maps to the projected identity.
    let engineer = TokenRequest::new(ENGINEER).group(ENGINEERS).amr(["pwd", "mfa"]);
    let own = client_with_token(&token(MSP_TENANT, &engineer).expect("contoso issuer")).await;
    let me = whoami(&own).await;
    assert_eq!(me.username.as_deref(), Some(projected(MSP_TENANT, ENGINEER).as_str()));
    let groups = me.groups.unwrap_or_default();
    assert!(groups.contains(&projected(MSP_TENANT, ENGINEERS)), "{groups:?}");
    assert!(groups.contains(&"system:authenticated".to_string()), "{groups:?}");
    let amr = me.extra.unwrap_or_default().remove("kubelighthouse.io/amr").unwrap_or_default();
    assert_eq!(amr, ["pwd", "mfa"]);

    // Delegated namespace: 200. Undelegated: 403.
    expect_list_pods(&own, &sub, 200, "the engineer").await;
    assert_eq!(list_pods_status(&own, &undelegated).await, 403);

    // The same object IDs from the other managing tenant's issuer: another identity, 403.
    let other = client_with_token(&token(OTHER_MSP_TENANT, &engineer).expect("fabrikam issuer")).await;
    assert_eq!(whoami(&other).await.username.as_deref(), Some(projected(OTHER_MSP_TENANT, ENGINEER).as_str()));
    assert_eq!(list_pods_status(&other, &sub).await, 403);

    // Not signed in at all (401): an issuer speaking for a tenant that is not its own, an
    // expired token, a token signed by a key the issuer never published, another audience.
    let issuer = issuer(OTHER_MSP_TENANT).expect("fabrikam issuer");
    for (why, request) in [
        ("tid of another tenant", engineer.clone().tid(MSP_TENANT)),
        ("expired", engineer.clone().expired()),
        ("unknown signing key", engineer.clone().unknown_key()),
        ("another audience", engineer.clone().audience("api://someone-else")),
    ] {
        let forged = if why == "tid of another tenant" {
            issuer.mint(&request).expect("mint")
        } else {
            token(MSP_TENANT, &request).expect("mint")
        };
        let status = list_pods_status(&client_with_token(&forged).await, &sub).await;
        assert_eq!(status, 401, "{why}");
    }

    // Revocation turns 200 into 403 for the very same token.
    let assignments: Api<RegistrationAssignment> = Api::namespaced(client.clone(), &sub);
    delete(&assignments, "contoso").await;
    expect_list_pods(&own, &sub, 403, "the engineer after revocation").await;
}
