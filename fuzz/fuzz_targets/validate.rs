//! The definition validator (`model::validate::validate_definition`) on any delegation
//! (hostile strings, limits, unknown roles, eligible authorizations) in a fixed world: no
//! panic; the same verdict twice; a rejection names a rule, field and message; a valid
//! definition grants only delegable rules, and the RBAC `model::desired` builds from it has
//! names and labels within Kubernetes' limits and Roles the classifier accepts.
#![no_main]

use std::sync::OnceLock;

use kube_lighthouse_fuzz::{check_definition, world, DefinitionInput, World};
use libfuzzer_sys::fuzz_target;

static WORLD: OnceLock<World> = OnceLock::new();

fuzz_target!(|input: DefinitionInput| {
    let world = WORLD.get_or_init(world);
    let spec = input.spec();
    let namespace = input.namespace();
    check_definition(world, &input.facts(&namespace, &spec));
});
