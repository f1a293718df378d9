//! The Azure template import (`azure::import`) on any template and parameters file (the
//! input is the template, then, after a NUL byte, the parameters file). No panic; the same
//! result twice; what imports has DNS-1123 names, lives in the subscription namespace or one
//! of its resource-group namespaces, and is validated without panic.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kube_lighthouse::azure::{import, ImportInput, SourceFile};
use kube_lighthouse::model::validate::DefinitionFacts;
use kube_lighthouse_fuzz::{check_definition, is_dns_subdomain, world, World};
use libfuzzer_sys::fuzz_target;

static WORLD: OnceLock<World> = OnceLock::new();

const SUBSCRIPTION: &str = "customer-a";

fuzz_target!(|data: &[u8]| {
    let (template, parameters) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(template) = SourceFile::from_bytes("template.json", template) else { return };
    let parameters = match parameters.map(|p| SourceFile::from_bytes("parameters.json", p)) {
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => return,
        None => None,
    };
    let world = WORLD.get_or_init(world);
    let resource_groups = BTreeMap::from([("Web".to_string(), "customer-a-web".to_string())]);
    let resource_group_namespaces = ["customer-a-web".to_string(), "customer-a-db".to_string()];
    let set = [("managedByTenantId".to_string(), kube_lighthouse_fuzz::MSP.to_string())];
    let input = ImportInput {
        template: &template,
        parameters: parameters.as_ref(),
        set: if template.sha256.as_bytes()[0] % 2 == 0 { &set[..] } else { &[] },
        subscription_namespace: SUBSCRIPTION,
        resource_groups: &resource_groups,
        resource_group_namespaces: &resource_group_namespaces,
        deployment_resource_group: Some("customer-a-web"),
        catalog: &world.catalog,
    };
    let first = import(&input);
    let second = import(&input);
    let show = |r: &Result<_, _>| match r {
        Ok(i) => format!("{i:?}"),
        Err(e) => format!("{e:?}"),
    };
    assert_eq!(show(&first), show(&second), "import is not deterministic");
    let Ok(imported) = first else { return };
    for d in &imported.definitions {
        let name = d.metadata.name.as_deref().unwrap_or("");
        assert!(is_dns_subdomain(name), "definition name {name:?}");
        assert_eq!(d.metadata.namespace.as_deref(), Some(SUBSCRIPTION));
        check_definition(
            world,
            &DefinitionFacts {
                namespace: SUBSCRIPTION,
                spec: &d.spec,
                generation: None,
                accepted_generation: None,
                older_definitions: 0,
            },
        );
    }
    for a in &imported.assignments {
        let name = a.metadata.name.as_deref().unwrap_or("");
        assert!(is_dns_subdomain(name), "assignment name {name:?}");
        let ns = a.metadata.namespace.as_deref().unwrap_or("");
        assert!(ns == SUBSCRIPTION || resource_group_namespaces.iter().any(|n| n == ns), "assignment in {ns:?}");
    }
});
