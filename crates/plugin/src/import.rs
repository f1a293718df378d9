//! `import -f TEMPLATE.json [-p PARAMETERS.json] -n SUBSCRIPTION_NS [--resource-group RG=NS ...]
//! [--set NAME=VALUE ...] [-g RG] [--dry-run=client|server]` (SPEC §11, issue 17): an Azure
//! Lighthouse onboarding template becomes RegistrationDefinitions and RegistrationAssignments.
//!
//! The command reads the files, asks the cluster what [`kube_lighthouse_core::azure::import`] needs (the
//! subscription's resource-group namespaces, the role catalog's ClusterRoles), imports, and
//! applies: definitions first, then assignments, with server-side apply under the field manager
//! `kubectl-lighthouse`. With `--dry-run=client` it prints instead (`-o yaml`: a multi-document
//! stream `kubectl apply -f -` takes) and, when no cluster answers, uses the catalog built into
//! the plugin and the `--resource-group` mappings alone.
//!
//! Nothing is applied when anything is wrong: every import error (each naming the template path
//! and field) is printed and the exit code is 1. Before anything is written, every definition
//! is sent as a server-side dry run (admission judges it); the assignments are dry-run once
//! their definitions exist, and a refusal there deletes the definitions this run created.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::Value;

use super::cli::{DryRun, GlobalArgs, ImportArgs};
use super::output::{self, OutputFormat};
use super::{client, is_forbidden, manifest, PluginError, FIELD_MANAGER};
use kube_lighthouse_core::api::{RegistrationAssignment, RegistrationDefinition, GROUP};
use kube_lighthouse_core::azure::{self, ImportError, ImportErrors, ImportInput, Imported, SourceFile};
use kube_lighthouse_core::model::catalog::Catalog;
use kube_lighthouse_core::model::keys;
use kube_lighthouse_core::model::scope::NamespaceInfo;

/// `registrationdefinition`, as `-o name` and the result lines spell it.
pub const DEFINITION_RESOURCE: &str = "registrationdefinition";
/// `registrationassignment`, as `-o name` and the result lines spell it.
pub const ASSIGNMENT_RESOURCE: &str = "registrationassignment";

/// The name a file is shown and recorded under (`kubelighthouse.io/imported-from`): its base
/// name, so that the annotation does not depend on where the file was read from.
pub fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Reads and parses a template or parameters file.
///
/// # Errors
/// Outer: [`PluginError::ReadFile`] when the file cannot be read. Inner: the
/// [`ImportError::Json`] of a file that is not JSON (collected with the other errors).
pub fn read_source(path: &Path) -> Result<Result<SourceFile, ImportError>, PluginError> {
    let bytes =
        std::fs::read(path).map_err(|source| PluginError::ReadFile { path: path.display().to_string(), source })?;
    Ok(SourceFile::from_bytes(&display_name(path), &bytes))
}

/// The resource-group namespaces of `subscription` among `namespaces` (labelled
/// `kubelighthouse.io/subscription: <subscription>` and not subscriptions themselves, SPEC §1),
/// sorted; terminating ones are left out.
pub fn resource_group_namespaces(namespaces: &[Namespace], subscription: &str) -> Vec<String> {
    let mut names: Vec<String> = namespaces
        .iter()
        .filter(|n| {
            let labels = n.metadata.labels.clone().unwrap_or_default();
            let terminating = n.metadata.deletion_timestamp.is_some();
            let info = NamespaceInfo::from_labels(&labels, terminating);
            !terminating && info.parent_subscription() == Some(subscription)
        })
        .map(|n| n.name_any())
        .collect();
    names.sort();
    names
}

/// What is wrong with `-n` as the namespace to import into, if anything: it must exist and be
/// a subscription namespace (label `kubelighthouse.io/tenant-id`).
pub fn subscription_problem(namespace: Option<&Namespace>, name: &str) -> Option<ImportError> {
    let path = format!("-n {name}");
    let Some(ns) = namespace else {
        return Some(ImportError::InvalidArgument { path, message: format!("namespace {name:?} does not exist") });
    };
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    let info = NamespaceInfo::from_labels(&labels, ns.metadata.deletion_timestamp.is_some());
    if info.terminating {
        return Some(ImportError::InvalidArgument { path, message: format!("namespace {name:?} is being deleted") });
    }
    match (&info.tenant_id, info.parent_subscription()) {
        (Some(_), _) => None,
        (None, Some(sub)) => Some(ImportError::InvalidArgument {
            path,
            message: format!(
                "namespace {name:?} is a resource group of subscription namespace {sub:?}: import into {sub} and map the resource group with --resource-group RG={name}"
            ),
        }),
        (None, None) => Some(ImportError::InvalidArgument {
            path,
            message: format!(
                "namespace {name:?} is not a subscription namespace (no label {}): a customer subscription is a namespace labelled with its home tenant",
                keys::TENANT_ID
            ),
        }),
    }
}

/// The `--resource-group RG=NAMESPACE` mappings whose namespace is not a resource-group
/// namespace of `subscription` (an assignment there would fall under another subscription).
pub fn foreign_mappings(mappings: &[(String, String)], facts: &ClusterFacts, subscription: &str) -> Vec<ImportError> {
    if !facts.resource_groups_known {
        return vec![];
    }
    mappings
        .iter()
        .filter(|(_, ns)| !facts.resource_group_namespaces.contains(ns))
        .map(|(rg, ns)| ImportError::InvalidArgument {
            path: format!("--resource-group {rg}={ns}"),
            message: format!(
                "namespace {ns:?} is not a resource-group namespace of subscription namespace {subscription:?} (label {}={subscription})",
                keys::SUBSCRIPTION
            ),
        })
        .collect()
}

/// What the cluster told the import (or what stands in for it).
pub struct ClusterFacts {
    /// The resource-group namespaces of the subscription namespace.
    pub resource_group_namespaces: Vec<String>,
    /// Whether [`ClusterFacts::resource_group_namespaces`] is the cluster's answer (false
    /// offline, or when namespaces may not be listed): then `--resource-group` targets are
    /// checked against it.
    pub resource_groups_known: bool,
    /// The role catalog: the cluster's, or the one built into the plugin.
    pub catalog: Catalog,
    /// What is wrong with the subscription namespace, if anything.
    pub subscription_problem: Option<ImportError>,
    /// What the user should know about where these came from (printed on stderr).
    pub notes: Vec<String>,
}

impl ClusterFacts {
    /// No cluster: the built-in catalog, no resource-group namespaces, no check of `-n`.
    pub fn offline(why: &str) -> ClusterFacts {
        ClusterFacts {
            resource_group_namespaces: vec![],
            resource_groups_known: false,
            catalog: manifest::shipped_catalog(),
            subscription_problem: None,
            notes: vec![format!(
                "no cluster answered ({why}): roles are checked against the catalog built into the plugin, resource groups map only by --resource-group, and the namespace is not checked"
            )],
        }
    }
}

/// Whether a kube error means no API server answered (rather than an answer).
fn unreachable(e: &kube::Error) -> bool {
    !matches!(e, kube::Error::Api(_))
}

/// Asks the cluster for the facts of an import into `namespace`. `offline_ok`
/// (`--dry-run=client`): an unreachable cluster yields [`ClusterFacts::offline`].
///
/// # Errors
/// [`PluginError::Api`] for refusals other than 403 (and for an unreachable cluster unless
/// `offline_ok`).
pub async fn cluster_facts(
    client: &kube::Client,
    namespace: &str,
    offline_ok: bool,
) -> Result<ClusterFacts, PluginError> {
    let mut notes = Vec::new();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let selector = ListParams::default().labels(&format!("{}={namespace}", keys::SUBSCRIPTION));
    let mut resource_groups_known = true;
    let resource_group_namespaces = match namespaces.list(&selector).await {
        Ok(list) => resource_group_namespaces(&list.items, namespace),
        Err(e) if offline_ok && unreachable(&e) => return Ok(ClusterFacts::offline(&e.to_string())),
        Err(e) if is_forbidden(&e) => {
            notes.push(format!(
                "you may not list namespaces: resource groups map only by --resource-group ({})",
                PluginError::from(e)
            ));
            resource_groups_known = false;
            vec![]
        }
        Err(e) => return Err(e.into()),
    };
    let subscription_problem = match namespaces.get_opt(namespace).await {
        Ok(ns) => subscription_problem(ns.as_ref(), namespace),
        Err(e) if is_forbidden(&e) => {
            notes.push(format!("you may not read namespace {namespace}: the cluster checks it is a subscription"));
            None
        }
        Err(e) => return Err(e.into()),
    };
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let catalog = match roles.list(&ListParams::default().labels(&format!("{}=true", keys::BUILT_IN))).await {
        Ok(list) => Catalog::from_cluster_roles(&list.items),
        Err(e) if is_forbidden(&e) => {
            notes.push(
                "you may not list the catalog's ClusterRoles: roles are checked against the catalog built into the plugin (the cluster judges them again)"
                    .to_string(),
            );
            manifest::shipped_catalog()
        }
        Err(e) => return Err(e.into()),
    };
    Ok(ClusterFacts { resource_group_namespaces, resource_groups_known, catalog, subscription_problem, notes })
}

/// The manifests to apply or print, definitions first (an assignment names its definition),
/// each without status.
///
/// # Errors
/// [`PluginError::Flag`] when an object does not serialize (never for these types).
pub fn manifests(imported: &Imported) -> Result<Vec<Value>, PluginError> {
    let mut out = Vec::new();
    for d in &imported.definitions {
        out.push(manifest::manifest(d)?);
    }
    for a in &imported.assignments {
        out.push(manifest::manifest(a)?);
    }
    Ok(out)
}

/// What applying did to one object (kubectl's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// It did not exist.
    Created,
    /// It existed and changed.
    Configured,
    /// It existed and the apply changed nothing (same resourceVersion).
    Unchanged,
}

impl Change {
    /// From the resourceVersion before (None: absent) and after the apply.
    pub fn of(before: Option<&str>, after: Option<&str>) -> Change {
        match before {
            None => Change::Created,
            Some(b) if Some(b) == after => Change::Unchanged,
            Some(_) => Change::Configured,
        }
    }

    /// `created`, `configured`, `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
        }
    }
}

/// One object of the result: its resource (`registrationdefinition` or
/// `registrationassignment`), the object as applied (or as it would be), and what happened.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// [`DEFINITION_RESOURCE`] or [`ASSIGNMENT_RESOURCE`].
    pub resource: &'static str,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// The object: the server's answer, or the manifest for `--dry-run=client`.
    pub object: Value,
    /// None for `--dry-run=client`.
    pub change: Option<Change>,
}

/// The result as the user asked for it: `-o yaml` a YAML stream of the objects (what `kubectl
/// apply -f -` reads), `-o json` a `v1` `List`, `-o name` `resource.group/name` lines, and
/// otherwise one line per object saying what happened (`… (dry run)`, `… (server dry run)`).
/// `managedFields` are left out, as kubectl does.
///
/// # Errors
/// [`PluginError::Encode`] when serialization fails.
pub fn render(outcomes: &[Outcome], format: Option<OutputFormat>, dry_run: DryRun) -> Result<String, PluginError> {
    let objects: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let mut v = o.object.clone();
            if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
            v
        })
        .collect();
    Ok(match format {
        Some(OutputFormat::Yaml) => output::to_yaml_stream(&objects)?,
        Some(OutputFormat::Json) => {
            output::to_json(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}))?
        }
        Some(OutputFormat::Name) => outcomes.iter().map(|o| format!("{}.{GROUP}/{}\n", o.resource, o.name)).collect(),
        _ => outcomes
            .iter()
            .map(|o| {
                let what = match (o.change, dry_run) {
                    (None, _) => "created (dry run)".to_string(),
                    (Some(c), DryRun::Server) => format!("{} (server dry run)", c.as_str()),
                    (Some(c), _) => c.as_str().to_string(),
                };
                format!("{}.{GROUP}/{} {what} (namespace {})\n", o.resource, o.name, o.namespace)
            })
            .collect(),
    })
}

/// Reads the files and imports with the cluster's facts; every error, also a problem with
/// `-n`, in one [`ImportErrors`].
///
/// # Errors
/// [`PluginError::ReadFile`] for an unreadable file, [`PluginError::Import`] for everything
/// that keeps the template from importing.
pub fn import_files(
    args: &ImportArgs,
    namespace: &str,
    facts: &ClusterFacts,
) -> Result<(Imported, SourceFile), PluginError> {
    let template = read_source(&args.template)?;
    let parameters = args.parameters.as_deref().map(read_source).transpose()?;
    let mut errors = Vec::new();
    let template = template.map_err(|e| errors.push(e)).ok();
    let parameters = match parameters {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    };
    errors.extend(facts.subscription_problem.clone());
    errors.extend(foreign_mappings(&args.resource_groups, facts, namespace));
    let Some(template) = template else { return Err(PluginError::Import(ImportErrors(errors))) };
    if args.parameters.is_some() && parameters.is_none() {
        return Err(PluginError::Import(ImportErrors(errors)));
    }
    let resource_groups: BTreeMap<String, String> = args.resource_groups.iter().cloned().collect();
    let input = ImportInput {
        template: &template,
        parameters: parameters.as_ref(),
        set: &args.set,
        subscription_namespace: namespace,
        resource_groups: &resource_groups,
        resource_group_namespaces: &facts.resource_group_namespaces,
        deployment_resource_group: args.deployment_resource_group.as_deref(),
        catalog: &facts.catalog,
    };
    match azure::import(&input) {
        Ok(imported) if errors.is_empty() => Ok((imported, template)),
        Ok(_) => Err(PluginError::Import(ImportErrors(errors))),
        Err(ImportErrors(more)) => {
            errors.extend(more);
            Err(PluginError::Import(ImportErrors(errors)))
        }
    }
}

async fn resource_version<K>(api: &Api<K>, name: &str) -> Result<Option<String>, PluginError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api.get_opt(name).await?.and_then(|o| o.resource_version()))
}

async fn server_side_apply<K>(api: &Api<K>, name: &str, manifest: &Value, dry_run: bool) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.dry_run = dry_run;
    api.patch(name, &params, &Patch::Apply(manifest)).await
}

fn refusal(resource: &str, namespace: &str, name: &str, e: kube::Error) -> String {
    format!("{resource}.{GROUP}/{name} (namespace {namespace}): {}", PluginError::from(e))
}

fn outcome<K: serde::Serialize + kube::Resource>(
    resource: &'static str,
    object: &K,
    before: Option<&str>,
) -> Result<Outcome, PluginError> {
    Ok(Outcome {
        resource,
        namespace: object.meta().namespace.clone().unwrap_or_default(),
        name: object.meta().name.clone().unwrap_or_default(),
        object: serde_json::to_value(object).map_err(|e| PluginError::Encode(e.to_string()))?,
        change: Some(Change::of(before, object.meta().resource_version.as_deref())),
    })
}

/// Applies `imported` (definitions first) with server-side apply, or only dry-runs it on the
/// server (`dry_run`). Nothing is written unless every definition passes a server dry run; an
/// assignment the server refuses (dry run) removes the definitions this run created.
///
/// # Errors
/// [`PluginError::Refused`] with every refusal; [`PluginError::Api`] for other failures.
pub async fn apply(client: &kube::Client, imported: &Imported, dry_run: bool) -> Result<Vec<Outcome>, PluginError> {
    let definition_api = |ns: &str| Api::<RegistrationDefinition>::namespaced(client.clone(), ns);
    let assignment_api = |ns: &str| Api::<RegistrationAssignment>::namespaced(client.clone(), ns);
    let mut definitions = Vec::new();
    let mut refused = Vec::new();
    for d in &imported.definitions {
        let (ns, name) = (d.namespace().unwrap_or_default(), d.name_any());
        let api = definition_api(&ns);
        let before = resource_version(&api, &name).await?;
        match server_side_apply(&api, &name, &manifest::manifest(d)?, true).await {
            Ok(_) => definitions.push((d, api, name, before)),
            Err(e) => refused.push(refusal(DEFINITION_RESOURCE, &ns, &name, e)),
        }
    }
    if !refused.is_empty() {
        return Err(PluginError::Refused(refused));
    }
    let mut outcomes = Vec::new();
    let mut created = Vec::new();
    for (d, api, name, before) in &definitions {
        let applied = server_side_apply(api, name, &manifest::manifest(*d)?, dry_run).await?;
        if before.is_none() && !dry_run {
            created.push((api.clone(), name.clone()));
        }
        outcomes.push(outcome(DEFINITION_RESOURCE, &applied, before.as_deref())?);
    }
    let mut assignments = Vec::new();
    for a in &imported.assignments {
        let (ns, name) = (a.namespace().unwrap_or_default(), a.name_any());
        let api = assignment_api(&ns);
        let before = resource_version(&api, &name).await?;
        match server_side_apply(&api, &name, &manifest::manifest(a)?, true).await {
            Ok(checked) => assignments.push((a, api, name, before, checked)),
            Err(e) => refused.push(refusal(ASSIGNMENT_RESOURCE, &ns, &name, e)),
        }
    }
    if !refused.is_empty() {
        for (api, name) in created {
            if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                refused.push(format!("and the definition {name} this import created could not be deleted: {e}"));
            }
        }
        return Err(PluginError::Refused(refused));
    }
    for (a, api, name, before, checked) in assignments {
        let applied =
            if dry_run { checked } else { server_side_apply(&api, &name, &manifest::manifest(a)?, false).await? };
        outcomes.push(outcome(ASSIGNMENT_RESOURCE, &applied, before.as_deref())?);
    }
    Ok(outcomes)
}

/// `import`.
///
/// # Errors
/// [`PluginError::Import`] with every reason the template does not import;
/// [`PluginError::Refused`] when the server refuses an object; [`PluginError`] otherwise.
pub async fn run(global: &GlobalArgs, args: &ImportArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    let client_dry_run = args.dry_run == DryRun::Client;
    let connection = match client::connect(global).await {
        Ok(c) => Some(c),
        Err(e) if client_dry_run => {
            eprintln!("note: {}", ClusterFacts::offline(&e.to_string()).notes.join("; "));
            None
        }
        Err(e) => return Err(e),
    };
    let namespace = match (&global.namespace, &connection) {
        (Some(ns), _) => ns.clone(),
        (None, Some(c)) => c.namespace.clone(),
        (None, None) => "default".to_string(),
    };
    let facts = match &connection {
        Some(c) => cluster_facts(&c.client, &namespace, client_dry_run).await?,
        None => ClusterFacts { notes: vec![], ..ClusterFacts::offline("") },
    };
    for note in &facts.notes {
        eprintln!("note: {note}");
    }
    let (imported, _) = import_files(args, &namespace, &facts)?;
    for warning in &imported.warnings {
        eprintln!("warning: {warning}");
    }
    let outcomes = match (&connection, args.dry_run) {
        (_, DryRun::Client) | (None, _) => {
            let mut outcomes = Vec::new();
            for (value, resource) in manifests(&imported)?.into_iter().zip(
                std::iter::repeat_n(DEFINITION_RESOURCE, imported.definitions.len())
                    .chain(std::iter::repeat_n(ASSIGNMENT_RESOURCE, imported.assignments.len())),
            ) {
                let meta = &value["metadata"];
                outcomes.push(Outcome {
                    resource,
                    namespace: meta["namespace"].as_str().unwrap_or_default().to_string(),
                    name: meta["name"].as_str().unwrap_or_default().to_string(),
                    object: value.clone(),
                    change: None,
                });
            }
            outcomes
        }
        (Some(c), dry_run) => apply(&c.client, &imported, dry_run == DryRun::Server).await?,
    };
    out.write_all(render(&outcomes, global.output, args.dry_run)?.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;
    use serde_json::json;

    use super::*;

    const TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
    const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

    fn namespace(name: &str, labels: &[(&str, &str)], terminating: bool) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                deletion_timestamp: terminating.then(|| {
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        "2025-01-01T00:00:00Z".parse().expect("timestamp"),
                    )
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn resource_groups_are_the_labelled_namespaces_of_the_subscription() {
        let all = [
            namespace("web", &[(keys::SUBSCRIPTION, "customer-a")], false),
            namespace("db", &[(keys::SUBSCRIPTION, "customer-a")], false),
            namespace("old", &[(keys::SUBSCRIPTION, "customer-a")], true),
            namespace("other", &[(keys::SUBSCRIPTION, "customer-b")], false),
            // A subscription namespace is never a resource group, whatever else it carries.
            namespace("sub", &[(keys::SUBSCRIPTION, "customer-a"), (keys::TENANT_ID, TENANT)], false),
            namespace("plain", &[], false),
        ];
        assert_eq!(resource_group_namespaces(&all, "customer-a"), ["db", "web"]);
        assert!(resource_group_namespaces(&all, "customer-c").is_empty());
    }

    #[test]
    fn only_a_subscription_namespace_takes_an_import() {
        let sub = namespace("customer-a", &[(keys::TENANT_ID, TENANT)], false);
        assert_eq!(subscription_problem(Some(&sub), "customer-a"), None);
        let message = |p: Option<ImportError>| p.expect("a problem").to_string();
        assert!(message(subscription_problem(None, "nope")).contains("-n nope: namespace \"nope\" does not exist"));
        let rg = namespace("web", &[(keys::SUBSCRIPTION, "customer-a")], false);
        let text = message(subscription_problem(Some(&rg), "web"));
        assert!(
            text.contains("resource group of subscription namespace \"customer-a\"")
                && text.contains("--resource-group RG=web"),
            "{text}"
        );
        let plain = namespace("default", &[], false);
        assert!(message(subscription_problem(Some(&plain), "default")).contains("not a subscription namespace"));
        let going = namespace("customer-a", &[(keys::TENANT_ID, TENANT)], true);
        assert!(message(subscription_problem(Some(&going), "customer-a")).contains("being deleted"));
    }

    #[test]
    fn mappings_must_target_resource_groups_of_the_subscription() {
        let mappings = vec![("web".to_string(), "customer-a-web".to_string()), ("db".into(), "customer-b-db".into())];
        let mut facts = ClusterFacts::offline("t");
        assert!(foreign_mappings(&mappings, &facts, "customer-a").is_empty(), "unknown offline: not checked");
        facts.resource_group_namespaces = vec!["customer-a-web".into()];
        facts.resource_groups_known = true;
        let errors = foreign_mappings(&mappings, &facts, "customer-a");
        let [e] = errors.as_slice() else { panic!("one error: {errors:?}") };
        assert!(e.to_string().starts_with("--resource-group db=customer-b-db: namespace \"customer-b-db\" is not a resource-group namespace of subscription namespace \"customer-a\""), "{e}");
    }

    #[test]
    fn changes_are_told_by_resource_version() {
        assert_eq!(Change::of(None, Some("5")), Change::Created);
        assert_eq!(Change::of(Some("5"), Some("5")), Change::Unchanged);
        assert_eq!(Change::of(Some("5"), Some("6")), Change::Configured);
    }

    fn template_file(dir: &Path) -> std::path::PathBuf {
        let template = json!({
            "$schema": "https://schema.management.azure.com/schemas/2019-08-01/subscriptionDeploymentTemplate.json#",
            "contentVersion": "1.0.0.0",
            "parameters": {
                "mspOfferName": {"type": "string"},
                "managedByTenantId": {"type": "string"},
                "rgName": {"type": "string", "defaultValue": "web"}
            },
            "variables": {"mspRegistrationName": "[guid(parameters('mspOfferName'))]"},
            "resources": [
                {"type": "Microsoft.ManagedServices/registrationDefinitions", "apiVersion": "2022-10-01",
                 "name": "[variables('mspRegistrationName')]",
                 "properties": {"registrationDefinitionName": "[parameters('mspOfferName')]",
                                "managedByTenantId": "[parameters('managedByTenantId')]",
                                "authorizations": [{"principalId": "00000000-0000-0000-0000-0000000000a1",
                                                    "principalIdDisplayName": "Ops", "roleDefinitionId": READER}]}},
                {"type": "Microsoft.Resources/deployments", "apiVersion": "2021-04-01", "name": "rgAssignment",
                 "resourceGroup": "[parameters('rgName')]",
                 "dependsOn": ["[resourceId('Microsoft.ManagedServices/registrationDefinitions/', variables('mspRegistrationName'))]"],
                 "properties": {"mode": "Incremental", "template": {
                     "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
                     "contentVersion": "1.0.0.0",
                     "resources": [{"type": "Microsoft.ManagedServices/registrationAssignments", "apiVersion": "2022-10-01",
                                    "name": "[variables('mspRegistrationName')]",
                                    "properties": {"registrationDefinitionId": "[resourceId('Microsoft.ManagedServices/registrationDefinitions/', variables('mspRegistrationName'))]"}}]}}}
            ]
        });
        let path = dir.join("rg.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&template).expect("json")).expect("write");
        path
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kl-import-unit-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    fn args(template: std::path::PathBuf, parameters: Option<std::path::PathBuf>) -> ImportArgs {
        ImportArgs {
            template,
            parameters,
            resource_groups: vec![],
            set: vec![],
            deployment_resource_group: None,
            dry_run: DryRun::Client,
        }
    }

    fn errors(result: Result<(Imported, SourceFile), PluginError>) -> Vec<String> {
        match result {
            Err(PluginError::Import(ImportErrors(e))) => e.iter().map(ToString::to_string).collect(),
            Err(other) => panic!("expected import errors, got {other}"),
            Ok((i, _)) => panic!("imported {} definitions", i.definitions.len()),
        }
    }

    #[test]
    fn files_import_with_the_facts_and_print_as_a_yaml_stream() {
        let dir = scratch("ok");
        let template = template_file(&dir);
        let parameters = dir.join("rg.parameters.json");
        std::fs::write(
            &parameters,
            json!({"parameters": {"mspOfferName": {"value": "Contoso Ops"}, "managedByTenantId": {"value": TENANT}}})
                .to_string(),
        )
        .expect("write");
        let mut a = args(template, Some(parameters));
        a.resource_groups = vec![("web".into(), "customer-a-web".into())];
        let facts = ClusterFacts::offline("test");
        let (imported, source) = import_files(&a, "customer-a", &facts).expect("imports");
        assert_eq!(source.name, "rg.json", "the base name is recorded, not the path");
        let manifests = manifests(&imported).expect("manifests");
        assert_eq!(manifests.len(), 2);
        assert_eq!(manifests[0]["kind"], "RegistrationDefinition", "definitions first");
        assert_eq!(manifests[0]["metadata"]["namespace"], "customer-a");
        assert_eq!(manifests[1]["kind"], "RegistrationAssignment");
        assert_eq!(manifests[1]["metadata"]["namespace"], "customer-a-web");
        let annotation = manifests[0]["metadata"]["annotations"][keys::IMPORTED_FROM].as_str().expect("annotation");
        assert!(annotation.starts_with("rg.json@sha256:"), "{annotation}");
        assert!(manifests[0].get("status").is_none());

        let outcomes: Vec<Outcome> = manifests
            .iter()
            .zip([DEFINITION_RESOURCE, ASSIGNMENT_RESOURCE])
            .map(|(m, resource)| Outcome {
                resource,
                namespace: m["metadata"]["namespace"].as_str().unwrap_or_default().into(),
                name: m["metadata"]["name"].as_str().unwrap_or_default().into(),
                object: m.clone(),
                change: None,
            })
            .collect();
        let yaml = render(&outcomes, Some(OutputFormat::Yaml), DryRun::Client).expect("yaml");
        let documents: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&yaml)
            .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
            .collect();
        assert_eq!(documents.len(), 2, "{yaml}");
        assert_eq!(documents[1]["kind"].as_str(), Some("RegistrationAssignment"));
        let name = &outcomes[0].name;
        assert_eq!(
            render(&outcomes, None, DryRun::Client).expect("text").lines().next(),
            Some(format!("registrationdefinition.{GROUP}/{name} created (dry run) (namespace customer-a)").as_str())
        );
        let names = render(&outcomes, Some(OutputFormat::Name), DryRun::Client).expect("names");
        assert_eq!(names, format!("registrationdefinition.{GROUP}/{name}\nregistrationassignment.{GROUP}/{name}\n"));
        let list: Value =
            serde_json::from_str(&render(&outcomes, Some(OutputFormat::Json), DryRun::Client).expect("json"))
                .expect("JSON");
        assert_eq!((list["kind"].as_str(), list["items"].as_array().map(Vec::len)), (Some("List"), Some(2)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn every_problem_is_reported_together() {
        let dir = scratch("bad");
        let template = template_file(&dir);
        let parameters = dir.join("p.json");
        std::fs::write(
            &parameters,
            json!({"parameters": {"mspOfferName": {"value": "X"}, "managedByTenantId": {"value": "<insert managing tenant id>"}}})
                .to_string(),
        )
        .expect("write");
        let mut facts = ClusterFacts::offline("test");
        facts.subscription_problem = subscription_problem(None, "customer-a");
        let got = errors(import_files(&args(template.clone(), Some(parameters)), "customer-a", &facts));
        // Three problems, three errors in one run: the namespace, the parameters file, and the
        // template's resource group with no namespace (found although the parameters failed).
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].starts_with("-n customer-a:"), "{got:#?}");
        assert!(got[1].starts_with("(p.json) parameters.managedByTenantId.value: placeholder"), "{got:#?}");
        assert!(got[2].starts_with("resources[1].resourceGroup: resource group \"web\" has no namespace"), "{got:#?}");

        // Not JSON: both files' errors, with line and column.
        let broken = dir.join("broken.json");
        std::fs::write(&broken, "{\n  \"parameters\": ,\n}").expect("write");
        let got = errors(import_files(&args(broken.clone(), Some(broken)), "customer-a", &ClusterFacts::offline("t")));
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got.iter().all(|e| e.starts_with("broken.json:2:")), "{got:#?}");

        // An unreadable file is not an import error but says which file.
        let missing = dir.join("missing.json");
        match import_files(&args(missing, None), "customer-a", &ClusterFacts::offline("t")) {
            Err(PluginError::ReadFile { path, .. }) => assert!(path.ends_with("missing.json")),
            other => panic!("expected a read error, got {:?}", other.map(|_| ())),
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn managed_fields_are_not_printed() {
        let outcome = Outcome {
            resource: DEFINITION_RESOURCE,
            namespace: "customer-a".into(),
            name: "x".into(),
            object: json!({"metadata": {"name": "x", "managedFields": [{"manager": "kubectl-lighthouse"}]}}),
            change: Some(Change::Unchanged),
        };
        let yaml = render(std::slice::from_ref(&outcome), Some(OutputFormat::Yaml), DryRun::None).expect("yaml");
        assert!(!yaml.contains("managedFields"), "{yaml}");
        let text = render(&[outcome], None, DryRun::Server).expect("text");
        assert_eq!(
            text,
            format!("registrationdefinition.{GROUP}/x unchanged (server dry run) (namespace customer-a)\n")
        );
    }
}
