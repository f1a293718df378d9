//! The admission webhook's decoding: an HTTP body as the routes read it (JSON, as axum's
//! `Json` extractor does) to an AdmissionReview, its request (`webhook::request`), each judged
//! object as its kind (`webhook::decode`), the whole mutating webhook (`webhook::mutate_review`)
//! and the pure RoleBinding verdict. No panic; the answer encodes and carries the request's
//! UID; the mutating webhook stamps exactly the caller on the activation kinds' creates; a
//! RegistrationDefinition that decodes is validated without panic.
#![no_main]

use std::sync::OnceLock;

use json_patch::Patch;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::core::admission::{AdmissionReview, Operation};
use kube::core::DynamicObject;
use kube_lighthouse::api::{ActivationReview, RegistrationAssignment, RegistrationDefinition, RoleActivation};
use kube_lighthouse::model::{activation, keys, user_access};
use kube_lighthouse::webhook::{decode, mutate_review, request};
use kube_lighthouse_fuzz::{check_definition, world, World};
use libfuzzer_sys::fuzz_target;

static WORLD: OnceLock<World> = OnceLock::new();

fuzz_target!(|body: &[u8]| {
    let Ok(review) = serde_json::from_slice::<AdmissionReview<DynamicObject>>(body) else { return };

    // The mutating webhook, as it runs.
    let answer = mutate_review(review.clone(), &|_, name| Some(format!("uid-of-{name}")));
    serde_json::to_vec(&answer).expect("the answer encodes");
    let response = answer.response.expect("every review is answered");

    let Ok(req) = request(review) else {
        assert!(!response.allowed, "a review without a request is allowed");
        return;
    };
    assert_eq!(response.uid, req.uid, "the answer names another request");
    let stamped = match req.kind.kind.as_str() {
        "RoleActivation" => Some(keys::REQUESTER),
        "ActivationReview" => Some(keys::REVIEWER),
        _ => None,
    };
    if let (Some(key), Operation::Create, true, Some(object)) = (stamped, &req.operation, response.allowed, &req.object)
    {
        // The stamp is the caller, whatever the client sent.
        let patch: Patch =
            serde_json::from_slice(response.patch.as_deref().expect("a create is stamped")).expect("the patch decodes");
        let mut object = serde_json::to_value(object).expect("the object encodes");
        json_patch::patch(&mut object, &patch).expect("the stamp applies to the object");
        let caller = activation::caller_from(&req.user_info);
        let written = object["metadata"]["annotations"][key].as_str().expect("the stamp is a string");
        assert_eq!(serde_json::from_str::<serde_json::Value>(written).ok(), serde_json::to_value(&caller).ok());
    } else if stamped.is_none() {
        assert!(response.allowed && response.patch.is_none(), "only the activation kinds are mutated");
    }

    // Every judged object as its kind: what the validating webhook reads.
    for object in [&req.object, &req.old_object] {
        if let Some(definition) = decode::<RegistrationDefinition>(object) {
            let world = WORLD.get_or_init(world);
            let namespace = req.namespace.clone().unwrap_or_default();
            let facts = kube_lighthouse::model::validate::DefinitionFacts {
                namespace: &namespace,
                spec: &definition.spec,
                generation: None,
                accepted_generation: None,
                older_definitions: 0,
            };
            check_definition(world, &facts);
        }
        let _ = decode::<RegistrationAssignment>(object);
        let _ = decode::<RoleActivation>(object);
        let _ = decode::<ActivationReview>(object);
        if let Some(mut binding) = decode::<RoleBinding>(object) {
            binding.metadata.namespace = req.namespace.clone();
            let groups = req.user_info.groups.clone().unwrap_or_default();
            let requester = user_access::Requester { username: req.user_info.username.as_deref(), groups: &groups };
            for change in [
                user_access::BindingChange::Create,
                user_access::BindingChange::Update,
                user_access::BindingChange::Delete,
            ] {
                let _ = user_access::admission_verdict(&binding, change, &requester, &[]);
            }
        }
    }
});
