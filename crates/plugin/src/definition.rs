//! `definition` and `assignment` `list|show|create|delete`: parity with
//! `az managedservices definition|assignment` (SPEC §11).
//!
//! `show` prints each authorization with its display name and the RBAC subject it is projected
//! to (SPEC §2), the namespaces in force and the Roles and RoleBindings the controller made
//! (found by the labels of [`kube_lighthouse_core::model::keys`]). `create` applies with server-side apply
//! under the field manager `kubectl-lighthouse`, or prints the manifest with
//! `--dry-run=client`. `delete` first says what access goes.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};

use k8s_openapi::api::rbac::v1::{Role, RoleBinding, Subject};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;

use super::cli::{
    AssignmentCommand, AssignmentCreateArgs, DefinitionCommand, DefinitionCreateArgs, DeleteArgs, DryRun, GlobalArgs,
};
use super::manifest::{self, DefinitionInput};
use super::output::{self, Column, OutputFormat, TextTable};
use super::providers::{catalog, list, resolve_resource_groups};
use super::{client, is_forbidden, PluginError, FIELD_MANAGER};
use kube_lighthouse_core::api::{RegistrationAssignment, RegistrationDefinition, GROUP};
use kube_lighthouse_core::model::catalog::Catalog;
use kube_lighthouse_core::model::keys;
use kube_lighthouse_core::model::projection::IdentityTemplates;
use kube_lighthouse_core::model::tenant::Guid;
use kube_lighthouse_core::model::views::role_name;

/// A Role or RoleBinding the controller materialized for an assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacObject {
    /// Namespace.
    pub namespace: String,
    /// `Role` or `RoleBinding`.
    pub kind: &'static str,
    /// Object name.
    pub name: String,
    /// The catalog role it was built from (annotation `kubelighthouse.io/source-cluster-role`).
    pub source_role: String,
    /// A RoleBinding's subjects (`Kind:name`), empty for a Role.
    pub subjects: Vec<String>,
}

fn subject_text(s: &Subject) -> String {
    match &s.namespace {
        Some(ns) if s.kind == "ServiceAccount" => format!("ServiceAccount:{ns}/{}", s.name),
        _ => format!("{}:{}", s.kind, s.name),
    }
}

/// The RBAC objects of `roles` and `bindings`, sorted by namespace, kind and name.
pub fn rbac_objects(roles: &[Role], bindings: &[RoleBinding]) -> Vec<RbacObject> {
    let source = |m: &kube::api::ObjectMeta| {
        m.annotations.as_ref().and_then(|a| a.get(keys::SOURCE_ROLE)).cloned().unwrap_or_default()
    };
    let mut out: Vec<RbacObject> = roles
        .iter()
        .map(|r| RbacObject {
            namespace: r.namespace().unwrap_or_default(),
            kind: "Role",
            name: r.name_any(),
            source_role: source(&r.metadata),
            subjects: vec![],
        })
        .chain(bindings.iter().map(|b| RbacObject {
            namespace: b.namespace().unwrap_or_default(),
            kind: "RoleBinding",
            name: b.name_any(),
            source_role: source(&b.metadata),
            subjects: b.subjects.iter().flatten().map(subject_text).collect(),
        }))
        .collect();
    out.sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
    out
}

/// The subjects an authorization of `definition` is projected to, as text (SPEC §2).
pub fn projected(
    templates: &IdentityTemplates,
    tenant: &str,
    principal: &str,
    kind: Option<kube_lighthouse_core::api::PrincipalType>,
) -> String {
    let canonical = match kind {
        Some(kube_lighthouse_core::api::PrincipalType::ServiceAccount) => Some(principal.to_string()),
        _ => Guid::parse(principal).map(|g| g.to_string()),
    };
    match (Guid::parse(tenant), canonical) {
        (Some(t), Some(p)) => {
            let subjects: Vec<String> = templates.subjects(t.as_str(), &p, kind).iter().map(subject_text).collect();
            subjects.join(" ")
        }
        _ => "<invalid: not a GUID>".to_string(),
    }
}

fn state_text(
    state: Option<kube_lighthouse_core::api::ProvisioningState>,
    conditions: &[kube_lighthouse_core::api::Condition],
) -> String {
    let state = state.map_or("Unknown", |s| s.as_str());
    match conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) if !c.reason.is_empty() && c.message.is_empty() => format!("{state} ({})", c.reason),
        Some(c) if !c.reason.is_empty() => format!("{state} ({}: {})", c.reason, c.message),
        _ => state.to_string(),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// `definition list` / `-A`: name, display name, managing tenant, counts, state.
pub fn definition_table(definitions: &[RegistrationDefinition], all_namespaces: bool) -> TextTable {
    let mut t = TextTable::new(output::namespaced(
        all_namespaces,
        [
            Column::new("Name"),
            Column::new("Display Name"),
            Column::new("Managed By"),
            Column::new("Authorizations"),
            Column::new("Eligible"),
            Column::new("State"),
            Column::wide("Reason"),
            Column::wide("Description"),
        ],
    ));
    for d in definitions {
        let status = d.status.clone().unwrap_or_default();
        let mut row = Vec::new();
        if all_namespaces {
            row.push(d.namespace().unwrap_or_default());
        }
        row.extend([
            d.name_any(),
            d.spec.registration_definition_name.clone(),
            d.spec.managed_by_tenant_id.clone(),
            d.spec.authorizations.len().to_string(),
            d.spec.eligible_authorizations.len().to_string(),
            status.provisioning_state.map_or("Unknown", |s| s.as_str()).to_string(),
            status.conditions.iter().find(|c| c.type_ == "Ready").map_or("<none>".into(), |c| c.reason.clone()),
            d.spec.description.clone().unwrap_or_else(|| "<none>".into()),
        ]);
        t.push(row);
    }
    t
}

/// `assignment list` / `-A`: name, definition, managing and customer tenant, state; wide adds
/// the namespaces in force and the reason.
pub fn assignment_table(assignments: &[RegistrationAssignment], all_namespaces: bool) -> TextTable {
    let mut t = TextTable::new(output::namespaced(
        all_namespaces,
        [
            Column::new("Name"),
            Column::new("Definition"),
            Column::new("Managed By"),
            Column::new("Customer"),
            Column::new("State"),
            Column::wide("Namespaces"),
            Column::wide("Reason"),
        ],
    ));
    for a in assignments {
        let status = a.status.clone().unwrap_or_default();
        let mut row = Vec::new();
        if all_namespaces {
            row.push(a.namespace().unwrap_or_default());
        }
        row.extend([
            a.name_any(),
            a.spec.registration_definition_ref.name.clone(),
            status.managed_by_tenant_id.unwrap_or_else(|| "<none>".into()),
            status.managee_tenant_id.unwrap_or_else(|| "<none>".into()),
            status.provisioning_state.map_or("Unknown", |s| s.as_str()).to_string(),
            output::join(&status.namespaces),
            status.conditions.iter().find(|c| c.type_ == "Ready").map_or("<none>".into(), |c| c.reason.clone()),
        ]);
        t.push(row);
    }
    t
}

/// The authorizations of a definition: principal, display name, type, role, and the subjects
/// each becomes; then the eligible ones with their policy.
pub fn authorizations_text(
    definition: &RegistrationDefinition,
    templates: &IdentityTemplates,
    catalog: &Catalog,
) -> String {
    let tenant = &definition.spec.managed_by_tenant_id;
    let mut t = TextTable::new(
        ["Principal ID", "Display Name", "Type", "Role", "Subjects"].iter().map(|c| Column::new(c)).collect(),
    );
    for a in &definition.spec.authorizations {
        let mut role = role_name(catalog, &a.role_definition_id);
        if !a.delegated_role_definition_ids.is_empty() {
            let delegated: Vec<String> =
                a.delegated_role_definition_ids.iter().map(|r| role_name(catalog, r)).collect();
            role = format!("{role} (may assign {})", delegated.join(","));
        }
        t.push(vec![
            a.principal_id.clone(),
            a.principal_id_display_name.clone().unwrap_or_else(|| "<none>".into()),
            a.principal_type.map_or("User+Group".into(), |k| format!("{k:?}")),
            role,
            projected(templates, tenant, &a.principal_id, a.principal_type),
        ]);
    }
    let mut text = format!("Authorizations:\n{}", indent(&t.render(false)));
    if !definition.spec.eligible_authorizations.is_empty() {
        let mut e = TextTable::new(
            ["Principal ID", "Display Name", "Role", "Max Duration", "MFA", "Approvers", "Subjects"]
                .iter()
                .map(|c| Column::new(c))
                .collect(),
        );
        for a in &definition.spec.eligible_authorizations {
            let policy = a.just_in_time_access_policy.as_ref();
            let approvers: Vec<String> = policy
                .map(|p| {
                    p.managed_by_tenant_approvers
                        .iter()
                        .map(|x| x.principal_id_display_name.clone().unwrap_or_else(|| x.principal_id.clone()))
                        .collect()
                })
                .unwrap_or_default();
            e.push(vec![
                a.principal_id.clone(),
                a.principal_id_display_name.clone().unwrap_or_else(|| "<none>".into()),
                role_name(catalog, &a.role_definition_id),
                policy.and_then(|p| p.maximum_activation_duration.clone()).unwrap_or_else(|| "PT8H".into()),
                policy.map_or("None".into(), |p| format!("{:?}", p.multi_factor_auth_provider)),
                output::join(&approvers),
                projected(templates, tenant, &a.principal_id, None),
            ]);
        }
        text.push_str(&format!("Eligible authorizations:\n{}", indent(&e.render(false))));
    }
    text
}

fn rbac_text(rbac: &[RbacObject], readable: bool) -> String {
    if !readable {
        return "RBAC objects: <not readable with your access>\n".to_string();
    }
    if rbac.is_empty() {
        return "RBAC objects: <none>\n".to_string();
    }
    let mut t =
        TextTable::new(["Namespace", "Kind", "Name", "Role", "Subjects"].iter().map(|c| Column::new(c)).collect());
    for o in rbac {
        t.push(vec![
            o.namespace.clone(),
            o.kind.to_string(),
            o.name.clone(),
            o.source_role.clone(),
            if o.kind == "Role" { String::new() } else { output::join(&o.subjects) },
        ]);
    }
    format!("RBAC objects:\n{}", indent(&t.render(false)))
}

/// `definition show`: the definition, its authorizations and their subjects, its assignments
/// with the namespaces in force, and the RBAC objects made for them.
pub fn describe_definition(
    definition: &RegistrationDefinition,
    assignments: &[&RegistrationAssignment],
    rbac: &[RbacObject],
    rbac_readable: bool,
    templates: &IdentityTemplates,
    catalog: &Catalog,
) -> String {
    let status = definition.status.clone().unwrap_or_default();
    let mut text = String::new();
    let mut field = |k: &str, v: String| text.push_str(&format!("{:<16}{v}\n", format!("{k}:")));
    field("Name", definition.name_any());
    field("Namespace", definition.namespace().unwrap_or_default());
    field("Offer", definition.spec.registration_definition_name.clone());
    field("Description", definition.spec.description.clone().unwrap_or_else(|| "<none>".into()));
    field("Managed By", definition.spec.managed_by_tenant_id.clone());
    field("Customer", status.managee_tenant_id.clone().unwrap_or_else(|| "<none>".into()));
    field("State", state_text(status.provisioning_state, &status.conditions));
    if let Some(p) = &definition.spec.plan {
        field("Plan", format!("{}/{}/{}@{}", p.publisher, p.product, p.name, p.version));
    }
    text.push_str(&authorizations_text(definition, templates, catalog));
    if assignments.is_empty() {
        text.push_str("Assignments: <none> (grants nothing until assigned)\n");
    } else {
        let mut t = TextTable::new(
            ["Namespace", "Name", "State", "Namespaces In Force"].iter().map(|c| Column::new(c)).collect(),
        );
        for a in assignments {
            let s = a.status.clone().unwrap_or_default();
            t.push(vec![
                a.namespace().unwrap_or_default(),
                a.name_any(),
                state_text(s.provisioning_state, &s.conditions),
                output::join(&s.namespaces),
            ]);
        }
        text.push_str(&format!("Assignments:\n{}", indent(&t.render(false))));
    }
    text.push_str(&rbac_text(rbac, rbac_readable));
    text
}

/// `assignment show`: the assignment, its state and namespaces in force, its definition's
/// authorizations with their subjects (when readable), and the RBAC objects made.
pub fn describe_assignment(
    assignment: &RegistrationAssignment,
    definition: Option<&RegistrationDefinition>,
    rbac: &[RbacObject],
    rbac_readable: bool,
    templates: &IdentityTemplates,
    catalog: &Catalog,
) -> String {
    let status = assignment.status.clone().unwrap_or_default();
    let mut text = String::new();
    let mut field = |k: &str, v: String| text.push_str(&format!("{:<21}{v}\n", format!("{k}:")));
    field("Name", assignment.name_any());
    field("Namespace", assignment.namespace().unwrap_or_default());
    field("Definition", assignment.spec.registration_definition_ref.name.clone());
    field("Managed By", status.managed_by_tenant_id.clone().unwrap_or_else(|| "<none>".into()));
    field("Customer", status.managee_tenant_id.clone().unwrap_or_else(|| "<none>".into()));
    field("State", state_text(status.provisioning_state, &status.conditions));
    field("Namespaces In Force", output::join(&status.namespaces));
    match definition {
        Some(d) => {
            field("Offer", d.spec.registration_definition_name.clone());
            text.push_str(&authorizations_text(d, templates, catalog));
        }
        None => text.push_str("Authorizations: <definition not readable with your access>\n"),
    }
    text.push_str(&rbac_text(rbac, rbac_readable));
    text
}

/// What deleting these assignments takes away: per assignment, the namespaces and the
/// subjects that lose access (from the RoleBindings made, else from the projection).
pub fn deletion_summary(
    what: &str,
    assignments: &[&RegistrationAssignment],
    rbac: &[RbacObject],
    projected_subjects: &[String],
) -> String {
    let mut text = format!("Deleting {what} revokes:\n");
    if assignments.is_empty() {
        text.push_str("  nothing: it is not assigned anywhere\n");
        return text;
    }
    for a in assignments {
        let status = a.status.clone().unwrap_or_default();
        let ns = a.namespace().unwrap_or_default();
        text.push_str(&format!(
            "  assignment {ns}/{}: access in {}\n",
            a.name_any(),
            if status.namespaces.is_empty() { "no namespace now".to_string() } else { status.namespaces.join(", ") }
        ));
    }
    let from_bindings: BTreeSet<String> =
        rbac.iter().filter(|o| o.kind == "RoleBinding").flat_map(|o| o.subjects.iter().cloned()).collect();
    let subjects: Vec<String> = if from_bindings.is_empty() {
        projected_subjects.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
    } else {
        from_bindings.into_iter().collect()
    };
    text.push_str(&format!("  subjects losing that access: {}\n", output::join(&subjects)));
    let objects = rbac.len();
    if objects > 0 {
        text.push_str(&format!("  {objects} Roles and RoleBindings are removed\n"));
    }
    text
}

fn templates() -> IdentityTemplates {
    let mut t = IdentityTemplates::default();
    if let Ok(user) = std::env::var("KUBE_LIGHTHOUSE_USER_TEMPLATE") {
        t.user = user;
    }
    if let Ok(group) = std::env::var("KUBE_LIGHTHOUSE_GROUP_TEMPLATE") {
        t.group = group;
    }
    t
}

/// The Roles and RoleBindings of `assignment` in its namespaces in force, by the label
/// `kubelighthouse.io/assignment-uid`; `None` when the caller may not list them.
///
/// # Errors
/// [`PluginError::Api`] for failures other than 403.
pub async fn rbac_of(
    client: &kube::Client,
    assignment: &RegistrationAssignment,
) -> Result<Option<Vec<RbacObject>>, PluginError> {
    let Some(uid) = assignment.uid() else { return Ok(Some(vec![])) };
    let selector = format!("{}={},{}={}", keys::MANAGED_BY, keys::MANAGER, keys::ASSIGNMENT_UID, uid);
    let params = ListParams::default().labels(&selector);
    let mut roles = Vec::new();
    let mut bindings = Vec::new();
    let namespaces = assignment.status.as_ref().map(|s| s.namespaces.clone()).unwrap_or_default();
    for ns in namespaces {
        let r: Api<Role> = Api::namespaced(client.clone(), &ns);
        let b: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
        match (r.list(&params).await, b.list(&params).await) {
            (Ok(r), Ok(b)) => {
                roles.extend(r.items);
                bindings.extend(b.items);
            }
            (Err(e), _) | (_, Err(e)) if is_forbidden(&e) => return Ok(None),
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        }
    }
    Ok(Some(rbac_objects(&roles, &bindings)))
}

/// Asks on stderr whether to go on; a non-interactive stdin needs `--yes`.
///
/// # Errors
/// [`PluginError::Usage`] without a terminal, [`PluginError::Aborted`] when not confirmed.
pub fn confirm(question: &str) -> Result<(), PluginError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(PluginError::Usage("not deleting without confirmation: pass --yes".into()));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        Ok(())
    } else {
        Err(PluginError::Aborted)
    }
}

fn print_objects<T: serde::Serialize>(
    format: Option<OutputFormat>,
    items: &[T],
    out: &mut dyn Write,
) -> Result<bool, PluginError> {
    let values: Vec<serde_json::Value> = items
        .iter()
        .map(|i| serde_json::to_value(i).map_err(|e| PluginError::Encode(e.to_string())))
        .collect::<Result<_, _>>()?;
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values});
    match format {
        Some(OutputFormat::Json) => out.write_all(output::to_json(&list)?.as_bytes())?,
        Some(OutputFormat::Yaml) => out.write_all(output::to_yaml(&list)?.as_bytes())?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// `definition …`.
///
/// # Errors
/// [`PluginError`] from flags or the API.
pub async fn definition(
    global: &GlobalArgs,
    command: DefinitionCommand,
    out: &mut dyn Write,
) -> Result<(), PluginError> {
    if let DefinitionCommand::Create(args) = &command {
        if args.dry_run == DryRun::Client {
            let namespace = match &global.namespace {
                Some(ns) => ns.clone(),
                None => client::config(global).await.map(|c| c.default_namespace).unwrap_or_else(|_| "default".into()),
            };
            let def = build_definition(args, &namespace, &manifest::shipped_catalog())?;
            return print_manifest(
                global.output,
                &manifest::manifest(&def)?,
                "registrationdefinition",
                &def.name_any(),
                "created (dry run)",
                out,
            );
        }
    }
    let conn = client::connect(global).await?;
    let ns = conn.namespace.clone();
    let api: Api<RegistrationDefinition> = Api::namespaced(conn.client.clone(), &ns);
    match command {
        DefinitionCommand::List => {
            let namespace = (!global.all_namespaces).then_some(ns.as_str());
            let items: Vec<RegistrationDefinition> = list(&conn.client, namespace).await?;
            if print_objects(global.output, &items, out)? {
                return Ok(());
            }
            if global.output == Some(OutputFormat::Name) {
                let names: Vec<String> = items.iter().map(|d| d.name_any()).collect();
                out.write_all(output::names("registrationdefinition", GROUP, &names).as_bytes())?;
            } else if items.is_empty() {
                eprintln!("No resources found");
            } else {
                let text =
                    definition_table(&items, global.all_namespaces).render(global.output == Some(OutputFormat::Wide));
                out.write_all(text.as_bytes())?;
            }
        }
        DefinitionCommand::Show { name } => {
            let def = api.get(&name).await?;
            if print_single(global.output, &def, out)? {
                return Ok(());
            }
            let assignments = assignments_of_definition(&conn.client, &def).await;
            let mine: Vec<&RegistrationAssignment> = assignments.iter().collect();
            let (rbac, readable) = rbac_of_all(&conn.client, &mine).await?;
            let catalog = catalog(&conn.client).await;
            out.write_all(describe_definition(&def, &mine, &rbac, readable, &templates(), &catalog).as_bytes())?;
        }
        DefinitionCommand::Create(args) => {
            let catalog = catalog(&conn.client).await;
            let def = build_definition(&args, &ns, &catalog)?;
            let applied =
                apply(&api, &def.name_any(), manifest::manifest(&def)?, args.dry_run == DryRun::Server).await?;
            print_applied(global.output, &applied, "registrationdefinition", args.dry_run == DryRun::Server, out)?;
        }
        DefinitionCommand::Delete(DeleteArgs { name, yes }) => {
            let def = api.get(&name).await?;
            let assignments = assignments_of_definition(&conn.client, &def).await;
            let mine: Vec<&RegistrationAssignment> = assignments.iter().collect();
            let (rbac, _) = rbac_of_all(&conn.client, &mine).await?;
            let t = templates();
            let projected_subjects: Vec<String> = def
                .spec
                .authorizations
                .iter()
                .map(|a| projected(&t, &def.spec.managed_by_tenant_id, &a.principal_id, a.principal_type))
                .collect();
            eprint!(
                "{}",
                deletion_summary(
                    &format!("definition {ns}/{name} and its assignments"),
                    &mine,
                    &rbac,
                    &projected_subjects
                )
            );
            if !yes {
                confirm("Delete it?")?;
            }
            api.delete(&name, &DeleteParams::default()).await?;
            writeln!(out, "registrationdefinition.{GROUP} \"{name}\" deleted")?;
        }
    }
    Ok(())
}

/// Assignments in `namespace` and, where readable, in every namespace (a subscription's
/// definition is assigned in its resource groups too).
async fn assignments_in_scope(client: &kube::Client, namespace: &str) -> Vec<RegistrationAssignment> {
    match list::<RegistrationAssignment>(client, None).await {
        Ok(all) => all,
        Err(_) => list::<RegistrationAssignment>(client, Some(namespace)).await.unwrap_or_default(),
    }
}

/// The assignments of `definition`, wherever the caller can see them.
async fn assignments_of_definition(
    client: &kube::Client,
    definition: &RegistrationDefinition,
) -> Vec<RegistrationAssignment> {
    let ns = definition.namespace().unwrap_or_default();
    let assignments = assignments_in_scope(client, &ns).await;
    let mut defs = vec![definition.clone()];
    let subs = resolve_resource_groups(client, &mut defs, &assignments).await;
    super::providers::assignments_of(definition, &assignments, &subs).into_iter().cloned().collect()
}

async fn rbac_of_all(
    client: &kube::Client,
    assignments: &[&RegistrationAssignment],
) -> Result<(Vec<RbacObject>, bool), PluginError> {
    let mut all = Vec::new();
    let mut readable = true;
    for a in assignments {
        match rbac_of(client, a).await? {
            Some(objects) => all.extend(objects),
            None => readable = false,
        }
    }
    Ok((all, readable))
}

fn build_definition(
    args: &DefinitionCreateArgs,
    namespace: &str,
    catalog: &Catalog,
) -> Result<RegistrationDefinition, PluginError> {
    let input = DefinitionInput {
        name: args.name.clone(),
        namespace: namespace.to_string(),
        display_name: args.display_name.clone(),
        description: args.description.clone(),
        managed_by_tenant_id: args.tenant_id.clone(),
        authorizations: args.authorizations.clone(),
        eligible: args.eligible.clone(),
        principal_id: args.principal_id.clone(),
        role_definition_id: args.role_definition_id.clone(),
        plan: [
            args.plan_name.clone(),
            args.plan_publisher.clone(),
            args.plan_product.clone(),
            args.plan_version.clone(),
        ],
    };
    Ok(manifest::definition(&input, catalog)?)
}

async fn apply<K>(api: &Api<K>, name: &str, manifest: serde_json::Value, dry_run: bool) -> Result<K, PluginError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.dry_run = dry_run;
    Ok(api.patch(name, &params, &Patch::Apply(manifest)).await?)
}

fn print_single<T: serde::Serialize>(
    format: Option<OutputFormat>,
    object: &T,
    out: &mut dyn Write,
) -> Result<bool, PluginError> {
    match format {
        Some(OutputFormat::Json) => out.write_all(output::to_json(object)?.as_bytes())?,
        Some(OutputFormat::Yaml) => out.write_all(output::to_yaml(object)?.as_bytes())?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn print_manifest(
    format: Option<OutputFormat>,
    manifest: &serde_json::Value,
    resource: &str,
    name: &str,
    verb: &str,
    out: &mut dyn Write,
) -> Result<(), PluginError> {
    if !print_single(format, manifest, out)? {
        match format {
            Some(OutputFormat::Name) => {
                out.write_all(output::names(resource, GROUP, &[name.to_string()]).as_bytes())?
            }
            _ => writeln!(out, "{resource}.{GROUP}/{name} {verb}")?,
        }
    }
    Ok(())
}

fn print_applied<K: kube::Resource + serde::Serialize>(
    format: Option<OutputFormat>,
    object: &K,
    resource: &str,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), PluginError> {
    let name = object.meta().name.clone().unwrap_or_default();
    if print_single(format, object, out)? {
        return Ok(());
    }
    match format {
        Some(OutputFormat::Name) => out.write_all(output::names(resource, GROUP, &[name]).as_bytes())?,
        _ => writeln!(
            out,
            "{resource}.{GROUP}/{name} serverside-applied{}",
            if dry_run { " (server dry run)" } else { "" }
        )?,
    }
    Ok(())
}

/// `assignment …`.
///
/// # Errors
/// [`PluginError`] from flags or the API.
pub async fn assignment(
    global: &GlobalArgs,
    command: AssignmentCommand,
    out: &mut dyn Write,
) -> Result<(), PluginError> {
    if let AssignmentCommand::Create(AssignmentCreateArgs { name, definition, dry_run: DryRun::Client }) = &command {
        let namespace = match &global.namespace {
            Some(ns) => ns.clone(),
            None => client::config(global).await.map(|c| c.default_namespace).unwrap_or_else(|_| "default".into()),
        };
        let name = name.clone().unwrap_or_else(|| definition.clone());
        let a = manifest::assignment(&name, &namespace, definition);
        return print_manifest(
            global.output,
            &manifest::manifest(&a)?,
            "registrationassignment",
            &name,
            "created (dry run)",
            out,
        );
    }
    let conn = client::connect(global).await?;
    let ns = conn.namespace.clone();
    let api: Api<RegistrationAssignment> = Api::namespaced(conn.client.clone(), &ns);
    match command {
        AssignmentCommand::List => {
            let namespace = (!global.all_namespaces).then_some(ns.as_str());
            let items: Vec<RegistrationAssignment> = list(&conn.client, namespace).await?;
            if print_objects(global.output, &items, out)? {
                return Ok(());
            }
            if global.output == Some(OutputFormat::Name) {
                let names: Vec<String> = items.iter().map(|a| a.name_any()).collect();
                out.write_all(output::names("registrationassignment", GROUP, &names).as_bytes())?;
            } else if items.is_empty() {
                eprintln!("No resources found");
            } else {
                let text =
                    assignment_table(&items, global.all_namespaces).render(global.output == Some(OutputFormat::Wide));
                out.write_all(text.as_bytes())?;
            }
        }
        AssignmentCommand::Show { name } => {
            let a = api.get(&name).await?;
            if print_single(global.output, &a, out)? {
                return Ok(());
            }
            let def = definition_of(&conn.client, &a).await;
            let (rbac, readable) = rbac_of_all(&conn.client, &[&a]).await?;
            let catalog = catalog(&conn.client).await;
            out.write_all(describe_assignment(&a, def.as_ref(), &rbac, readable, &templates(), &catalog).as_bytes())?;
        }
        AssignmentCommand::Create(args) => {
            let name = args.name.clone().unwrap_or_else(|| args.definition.clone());
            let a = manifest::assignment(&name, &ns, &args.definition);
            let applied = apply(&api, &name, manifest::manifest(&a)?, args.dry_run == DryRun::Server).await?;
            print_applied(global.output, &applied, "registrationassignment", args.dry_run == DryRun::Server, out)?;
        }
        AssignmentCommand::Delete(DeleteArgs { name, yes }) => {
            let a = api.get(&name).await?;
            let def = definition_of(&conn.client, &a).await;
            let (rbac, _) = rbac_of_all(&conn.client, &[&a]).await?;
            let t = templates();
            let projected_subjects: Vec<String> = def
                .iter()
                .flat_map(|d| {
                    d.spec
                        .authorizations
                        .iter()
                        .map(|x| projected(&t, &d.spec.managed_by_tenant_id, &x.principal_id, x.principal_type))
                })
                .collect();
            eprint!("{}", deletion_summary(&format!("assignment {ns}/{name}"), &[&a], &rbac, &projected_subjects));
            if !yes {
                confirm("Delete it?")?;
            }
            api.delete(&name, &DeleteParams::default()).await?;
            writeln!(out, "registrationassignment.{GROUP} \"{name}\" deleted")?;
        }
    }
    Ok(())
}

/// The definition an assignment assigns: in its namespace, or in the subscription named by
/// its namespace's label; `None` when not readable.
async fn definition_of(client: &kube::Client, assignment: &RegistrationAssignment) -> Option<RegistrationDefinition> {
    let ns = assignment.namespace()?;
    let name = &assignment.spec.registration_definition_ref.name;
    let here: Api<RegistrationDefinition> = Api::namespaced(client.clone(), &ns);
    if let Ok(d) = here.get(name).await {
        return Some(d);
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let sub = namespaces.get(&ns).await.ok()?.metadata.labels?.get(keys::SUBSCRIPTION)?.clone();
    Api::<RegistrationDefinition>::namespaced(client.clone(), &sub).get(name).await.ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::api::ObjectMeta;

    use super::*;
    use crate::manifest::shipped_catalog;
    use kube_lighthouse_core::api::{ProvisioningState, RegistrationAssignmentStatus};

    const TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";

    fn def() -> RegistrationDefinition {
        manifest::definition(
            &DefinitionInput {
                name: "contoso-msp".into(),
                namespace: "customer-a".into(),
                display_name: Some("Contoso Managed Services".into()),
                managed_by_tenant_id: TENANT.into(),
                authorizations: vec![
                    "principalId=00000000-0000-0000-0000-0000000000a1,role=Reader,principalType=Group,displayName=Engineers".into(),
                    "principalId=00000000-0000-0000-0000-0000000000b2,role=Contributor".into(),
                ],
                eligible: vec!["principalId=00000000-0000-0000-0000-0000000000c3,role=Contributor,approvers=00000000-0000-0000-0000-0000000000d4:Leads".into()],
                ..Default::default()
            },
            &shipped_catalog(),
        )
        .expect("valid")
    }

    fn assigned() -> RegistrationAssignment {
        let mut a = manifest::assignment("contoso-msp", "customer-a", "contoso-msp");
        a.status = Some(RegistrationAssignmentStatus {
            provisioning_state: Some(ProvisioningState::Succeeded),
            namespaces: vec!["customer-a".into(), "customer-a-web".into()],
            ..Default::default()
        });
        a
    }

    fn binding(ns: &str, subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta {
                name: Some("kubelighthouse:abc:kubelighthouse:reader".into()),
                namespace: Some(ns.into()),
                annotations: Some(BTreeMap::from([(
                    keys::SOURCE_ROLE.to_string(),
                    "kubelighthouse:reader".to_string(),
                )])),
                ..Default::default()
            },
            role_ref: Default::default(),
            subjects: Some(subjects),
        }
    }

    #[test]
    fn show_names_the_subject_each_authorization_becomes() {
        let text = authorizations_text(&def(), &IdentityTemplates::default(), &shipped_catalog());
        assert!(text.contains(&format!("Group:{TENANT}:00000000-0000-0000-0000-0000000000a1")), "{text}");
        assert!(
            text.contains(&format!("User:{TENANT}:00000000-0000-0000-0000-0000000000b2 Group:{TENANT}:00000000-0000-0000-0000-0000000000b2")),
            "an untyped principal becomes both: {text}"
        );
        assert!(text.contains("Engineers"));
        assert!(text.contains("Reader") && text.contains("Contributor"));
        assert!(text.contains("Eligible authorizations:") && text.contains("Leads") && text.contains("PT8H"));
    }

    #[test]
    fn show_lists_assignments_and_rbac_objects() {
        let a = assigned();
        let rbac = rbac_objects(
            &[],
            &[binding("customer-a", vec![kube_lighthouse_core::model::projection::user(format!("{TENANT}:x"))])],
        );
        let text = describe_definition(&def(), &[&a], &rbac, true, &IdentityTemplates::default(), &shipped_catalog());
        assert!(
            text.starts_with(
                "Name:           contoso-msp\nNamespace:      customer-a\nOffer:          Contoso Managed Services\n"
            ),
            "{text}"
        );
        assert!(text.contains("customer-a,customer-a-web"), "{text}");
        assert!(text.contains("RoleBinding") && text.contains("kubelighthouse:reader"), "{text}");
        let hidden = describe_definition(&def(), &[], &[], false, &IdentityTemplates::default(), &shipped_catalog());
        assert!(hidden.contains("Assignments: <none>") && hidden.contains("<not readable with your access>"));
        let shown = describe_assignment(&a, None, &[], true, &IdentityTemplates::default(), &shipped_catalog());
        assert!(shown.contains("Namespaces In Force: customer-a,customer-a-web"), "{shown}");
        assert!(shown.contains("<definition not readable"));
    }

    #[test]
    fn delete_says_which_access_goes() {
        let a = assigned();
        let rbac =
            rbac_objects(&[], &[binding("customer-a", vec![kube_lighthouse_core::model::projection::user("t:alice")])]);
        let text = deletion_summary("assignment customer-a/contoso-msp", &[&a], &rbac, &["User:t:ignored".into()]);
        assert_eq!(
            text,
            "Deleting assignment customer-a/contoso-msp revokes:\n  assignment customer-a/contoso-msp: access in customer-a, customer-a-web\n  subjects losing that access: User:t:alice\n  1 Roles and RoleBindings are removed\n"
        );
        let projected_only = deletion_summary("x", &[&a], &[], &["User:t:b".into(), "User:t:a".into()]);
        assert!(projected_only.contains("subjects losing that access: User:t:a,User:t:b"));
        assert!(deletion_summary("x", &[], &[], &[]).contains("nothing: it is not assigned anywhere"));
    }

    #[test]
    fn list_tables_have_the_expected_columns() {
        let text = definition_table(&[def()], false).render(false);
        assert_eq!(text.lines().next(), Some("NAME          DISPLAY NAME               MANAGED BY                             AUTHORIZATIONS   ELIGIBLE   STATE"));
        assert!(text.lines().nth(1).expect("row").ends_with("2                1          Unknown"));
        let text = assignment_table(&[assigned()], true).render(true);
        assert!(text.starts_with("NAMESPACE    NAME          DEFINITION    MANAGED BY   CUSTOMER   STATE       NAMESPACES                  REASON\n"), "{text}");
    }

    #[test]
    fn invalid_ids_project_to_nothing() {
        assert_eq!(projected(&IdentityTemplates::default(), "contoso", "x", None), "<invalid: not a GUID>");
        assert_eq!(
            projected(
                &IdentityTemplates::default(),
                TENANT,
                "msp/deployer",
                Some(kube_lighthouse_core::api::PrincipalType::ServiceAccount)
            ),
            "ServiceAccount:msp/deployer"
        );
    }
}
