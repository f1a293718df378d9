//! Just-in-time access from the command line (SPEC §9, §11): `eligible`, `activate`,
//! `requests`, `approve`, `deny`, `deactivate`. Every one is a request with the caller's own
//! identity: the admission webhook stamps it and judges it, the API server's audit log keeps
//! it. What is built or printed is pure and tested here; the commands only fetch and send.

use std::io::Write;
use std::time::Duration;

use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::cli::{ActivateArgs, GlobalArgs, RequestsArgs, ReviewArgs};
use super::output::{self, Column, OutputFormat, TextTable};
use super::{client, views, PluginError};
use kube_lighthouse_core::api::activation::{ActivationRef, AssignmentRef, Ticket};
use kube_lighthouse_core::api::view::Delegation;
use kube_lighthouse_core::api::{
    ActivationPhase, ActivationReview, ActivationReviewSpec, Decision, RoleActivation, RoleActivationSpec,
    ACTIVATION_GROUP,
};
use kube_lighthouse_core::model::validate::eligible::parse_duration;

/// `--for`: ISO 8601 (`PT2H`) or kubectl's friendly form (`2h`, `90m`, `1h30m`), as ISO 8601.
///
/// # Errors
/// [`PluginError::Usage`] when it is neither, or not positive.
pub fn iso_duration(text: &str) -> Result<String, PluginError> {
    let parsed = parse_duration(text).or_else(|_| text.parse::<jiff::SignedDuration>().map_err(|e| e.to_string()));
    match parsed {
        Ok(d) if d.is_positive() => Ok(d.to_string()),
        _ => Err(PluginError::Usage(format!("--for {text:?} is not a duration such as 2h, 90m or PT2H"))),
    }
}

/// `--ticket SYSTEM:NUMBER`.
///
/// # Errors
/// [`PluginError::Usage`] without the colon.
pub fn ticket(text: &str) -> Result<Ticket, PluginError> {
    match text.split_once(':') {
        Some((system, number)) if !system.is_empty() && !number.is_empty() => {
            Ok(Ticket { system: system.into(), number: number.into() })
        }
        _ => Err(PluginError::Usage(format!("--ticket {text:?} is not SYSTEM:NUMBER"))),
    }
}

/// The RoleActivation `activate` creates.
///
/// # Errors
/// [`PluginError::Usage`] for a bad `--for`, `--ticket` or an empty `--reason`.
pub fn activation_manifest(args: &ActivateArgs, namespace: &str) -> Result<RoleActivation, PluginError> {
    if args.reason.trim().is_empty() {
        return Err(PluginError::Usage("--reason is required: say why you need the access".into()));
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let role: String =
            args.role.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        format!("{}-{}", role.trim_matches('-'), jiff::Timestamp::now().as_second())
    });
    let mut activation = RoleActivation::new(
        &name,
        RoleActivationSpec {
            registration_assignment_ref: AssignmentRef { name: args.assignment.clone() },
            role_definition_id: args.role.clone(),
            duration: iso_duration(&args.duration)?,
            justification: args.reason.clone(),
            ticket: args.ticket.as_deref().map(ticket).transpose()?,
        },
    );
    activation.metadata.namespace = Some(namespace.to_string());
    Ok(activation)
}

/// The ActivationReview `approve` or `deny` creates.
pub fn review_manifest(activation: &str, namespace: &str, decision: Decision, reason: &str) -> ActivationReview {
    let verb = match decision {
        Decision::Approve => "approve",
        Decision::Deny => "deny",
    };
    let mut review = ActivationReview::new(
        &format!("{verb}-{activation}-{}", jiff::Timestamp::now().as_second()),
        ActivationReviewSpec {
            role_activation_ref: ActivationRef { name: activation.into() },
            decision,
            reason: reason.into(),
        },
    );
    review.metadata.namespace = Some(namespace.to_string());
    review
}

/// Which requests `requests` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Every activation the caller can see.
    All,
    /// Requested by the caller.
    Mine,
    /// Pending, and requested by someone else (the webhook decides whether the caller is an
    /// approver of each).
    ToApprove,
}

/// Whether `a` passes `filter` for caller `me`.
pub fn shown(a: &RoleActivation, filter: Filter, me: &str) -> bool {
    let status = a.status.as_ref();
    let requester = status.and_then(|s| s.requester.as_ref()).map(|r| r.username.as_str());
    match filter {
        Filter::All => true,
        Filter::Mine => requester == Some(me),
        Filter::ToApprove => status.and_then(|s| s.phase) == Some(ActivationPhase::Pending) && requester != Some(me),
    }
}

/// The `requests` table: NAMESPACE, NAME, REQUESTER, ROLE, PHASE, EXPIRES, and with `-o wide`
/// the justification, the ticket and the reviews.
pub fn requests_table(activations: &[RoleActivation]) -> TextTable {
    let mut t = TextTable::new(vec![
        Column::new("Namespace"),
        Column::new("Name"),
        Column::new("Requester"),
        Column::new("Role"),
        Column::new("Phase"),
        Column::new("Expires"),
        Column::wide("Justification"),
        Column::wide("Ticket"),
        Column::wide("Reviews"),
    ]);
    for a in activations {
        let status = a.status.clone().unwrap_or_default();
        t.push(vec![
            a.metadata.namespace.clone().unwrap_or_default(),
            a.metadata.name.clone().unwrap_or_default(),
            status.requester.map(|r| r.username).unwrap_or_else(|| "<unknown>".into()),
            a.spec.role_definition_id.clone(),
            status.phase.map_or("<new>", ActivationPhase::as_str).to_string(),
            status.expires_at.map(|t| t.0.to_string()).unwrap_or_else(|| "<none>".into()),
            a.spec.justification.clone(),
            a.spec.ticket.as_ref().map(|t| format!("{}:{}", t.system, t.number)).unwrap_or_default(),
            status.reviews.iter().map(|r| format!("{:?} by {}", r.decision, r.reviewer)).collect::<Vec<_>>().join("; "),
        ]);
    }
    t
}

/// The `eligible` table: what the caller may activate, where, from the views API's
/// delegations (SPEC §10): NAMESPACE, ASSIGNMENT, ROLE, ROLE ID, CUSTOMER, and with `-o wide`
/// the namespaces in force and how the caller matched.
pub fn eligible_table(delegations: &[Delegation]) -> TextTable {
    let mut t = TextTable::new(vec![
        Column::new("Namespace"),
        Column::new("Assignment"),
        Column::new("Role"),
        Column::new("Role ID"),
        Column::new("Customer"),
        Column::wide("Namespaces"),
        Column::wide("As"),
    ]);
    for d in delegations {
        for e in &d.my_roles.eligible {
            t.push(vec![
                d.namespace.clone(),
                d.assignment.clone(),
                e.role.clone(),
                e.role_definition_id.clone(),
                d.customer_tenant_id.clone(),
                d.namespaces.join(","),
                e.subject.clone(),
            ]);
        }
    }
    t
}

async fn me(client: &kube::Client) -> Result<String, PluginError> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api.create(&PostParams::default(), &SelfSubjectReview::default()).await?;
    Ok(review.status.and_then(|s| s.user_info).and_then(|u| u.username).unwrap_or_default())
}

/// `eligible`: what the caller may activate, where.
///
/// # Errors
/// [`PluginError::ViewsUnavailable`] when the views API is not served.
pub async fn eligible(global: &GlobalArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    let conn = client::connect(global).await?;
    let mut delegations = views::list_delegations(conn.client).await?;
    delegations.retain(|d| !d.my_roles.eligible.is_empty());
    if let Some(ns) = global.namespace.as_deref().filter(|_| !global.all_namespaces) {
        delegations.retain(|d| d.namespace == ns || d.namespaces.iter().any(|n| n == ns));
    }
    let text = match global.output {
        Some(OutputFormat::Json) => output::to_json(&delegations)?,
        Some(OutputFormat::Yaml) => output::to_yaml_stream(&delegations)?,
        Some(OutputFormat::Name) => {
            let names: Vec<String> = delegations.iter().map(|d| d.metadata.name.clone().unwrap_or_default()).collect();
            output::names("delegations", kube_lighthouse_core::api::view::VIEW_GROUP, &names)
        }
        Some(OutputFormat::Wide) => eligible_table(&delegations).render(true),
        None => eligible_table(&delegations).render(false),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// `activate ROLE -n NS --for 2h --reason "…" [--ticket SYSTEM:NUMBER] [--wait]`.
///
/// # Errors
/// [`PluginError`]: the webhook's refusal (not eligible, above the policy, MFA required…).
pub async fn activate(global: &GlobalArgs, args: &ActivateArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    let conn = client::connect(global).await?;
    let manifest = activation_manifest(args, &conn.namespace)?;
    let api: Api<RoleActivation> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let name = manifest.metadata.name.clone().unwrap_or_default();
    let created = api.create(&PostParams::default(), &manifest).await?;
    writeln!(out, "roleactivation.{ACTIVATION_GROUP}/{name} created")?;
    if !args.wait {
        return Ok(());
    }
    let mut current = created;
    loop {
        let phase = current.status.as_ref().and_then(|s| s.phase);
        match phase {
            Some(ActivationPhase::Active) => {
                let expires = current.status.and_then(|s| s.expires_at).map(|t| t.0.to_string()).unwrap_or_default();
                writeln!(out, "Active until {expires}")?;
                return Ok(());
            }
            Some(p) if p.is_final() => {
                return Err(PluginError::Api(format!("the activation is {}", p.as_str())));
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        current = match api.get(&name).await {
            Ok(a) => a,
            // The requester's right to read its own activation is materialized by the
            // controller just after the create (docs/just-in-time.md): not there yet.
            Err(kube::Error::Api(s)) if s.code == 403 => continue,
            Err(e) => return Err(e.into()),
        };
    }
}

/// `requests [--mine | --to-approve]`.
///
/// # Errors
/// [`PluginError`] when the list is refused.
pub async fn requests(global: &GlobalArgs, args: &RequestsArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    let conn = client::connect(global).await?;
    let filter = match (args.mine, args.to_approve) {
        (true, _) => Filter::Mine,
        (_, true) => Filter::ToApprove,
        _ => Filter::All,
    };
    let me = if filter == Filter::All { String::new() } else { me(&conn.client).await? };
    let listed = if global.all_namespaces {
        list_everywhere(&conn.client).await?
    } else {
        match Api::<RoleActivation>::namespaced(conn.client.clone(), &conn.namespace).list(&ListParams::default()).await
        {
            Ok(list) => list.items,
            // A managing-tenant identity may not list activations: only read its own and
            // those it may review, which the views API names.
            Err(kube::Error::Api(s)) if s.code == 403 => readable(&conn.client, Some(&conn.namespace)).await?,
            Err(e) => return Err(e.into()),
        }
    };
    let mut items: Vec<RoleActivation> = listed.into_iter().filter(|a| shown(a, filter, &me)).collect();
    items.sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
    let text = match global.output {
        Some(OutputFormat::Json) => output::to_json(&items)?,
        Some(OutputFormat::Yaml) => output::to_yaml_stream(&items)?,
        Some(OutputFormat::Name) => {
            let names: Vec<String> = items.iter().map(|a| a.metadata.name.clone().unwrap_or_default()).collect();
            output::names("roleactivations", ACTIVATION_GROUP, &names)
        }
        Some(OutputFormat::Wide) => requests_table(&items).render(true),
        None => requests_table(&items).render(false),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Every activation the caller may list, for `-A`: across the cluster when allowed (a
/// customer admin of the cluster), else the ones the views API says the caller may read.
///
/// # Errors
/// [`PluginError`] when neither works.
async fn list_everywhere(client: &kube::Client) -> Result<Vec<RoleActivation>, PluginError> {
    match Api::<RoleActivation>::all(client.clone()).list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(s)) if s.code == 403 => readable(client, None).await,
        Err(e) => Err(e.into()),
    }
}

/// The live activations a managing-tenant identity may read (its own, and those it may
/// review), in `namespace` or everywhere: named by the views API's delegations, each read
/// with the caller's own per-activation right (docs/just-in-time.md).
///
/// # Errors
/// [`PluginError`] when the views API cannot be read, or a read fails otherwise than 403/404
/// (an activation that ended as we ask).
async fn readable(client: &kube::Client, namespace: Option<&str>) -> Result<Vec<RoleActivation>, PluginError> {
    let mut names: Vec<(String, String)> = views::list_delegations(client.clone())
        .await?
        .into_iter()
        .flat_map(|d| d.activations)
        .filter_map(|qualified| qualified.split_once('/').map(|(ns, n)| (ns.to_string(), n.to_string())))
        .filter(|(ns, _)| namespace.is_none_or(|wanted| wanted == ns))
        .collect();
    names.sort();
    names.dedup();
    let mut items = Vec::new();
    for (ns, name) in names {
        match Api::<RoleActivation>::namespaced(client.clone(), &ns).get(&name).await {
            Ok(a) => items.push(a),
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(items)
}

/// `approve|deny NAME -n NS --reason "…"`.
///
/// # Errors
/// [`PluginError`]: the webhook's refusal (not an approver, self-approval, not Pending).
pub async fn review(
    global: &GlobalArgs,
    args: &ReviewArgs,
    decision: Decision,
    out: &mut dyn Write,
) -> Result<(), PluginError> {
    if args.reason.trim().is_empty() {
        return Err(PluginError::Usage("--reason is required".into()));
    }
    let conn = client::connect(global).await?;
    let review = review_manifest(&args.name, &conn.namespace, decision, &args.reason);
    let api: Api<ActivationReview> = Api::namespaced(conn.client, &conn.namespace);
    api.create(&PostParams::default(), &review).await?;
    let verb = if decision == Decision::Approve { "approved" } else { "denied" };
    writeln!(out, "roleactivation.{ACTIVATION_GROUP}/{} {verb}", args.name)?;
    Ok(())
}

/// `deactivate NAME -n NS`: ends an activation early (Canceled when it is the caller's own).
///
/// # Errors
/// [`PluginError`] when the delete is refused.
pub async fn deactivate(global: &GlobalArgs, name: &str, out: &mut dyn Write) -> Result<(), PluginError> {
    let conn = client::connect(global).await?;
    let api: Api<RoleActivation> = Api::namespaced(conn.client, &conn.namespace);
    api.delete(name, &DeleteParams::default()).await?;
    writeln!(out, "roleactivation.{ACTIVATION_GROUP}/{name} deactivated")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_lighthouse_core::api::{Caller, RoleActivationStatus};

    fn args(duration: &str) -> ActivateArgs {
        ActivateArgs {
            role: "Contributor".into(),
            assignment: "contoso".into(),
            duration: duration.into(),
            reason: "Outage 4711".into(),
            ticket: Some("ServiceNow:INC4711".into()),
            name: Some("fix-4711".into()),
            wait: false,
        }
    }

    #[test]
    fn durations_are_written_as_iso_8601() {
        assert_eq!(iso_duration("2h").expect("2h"), "PT2H");
        assert_eq!(iso_duration("90m").expect("90m"), "PT1H30M");
        assert_eq!(iso_duration("PT30M").expect("iso"), "PT30M");
        assert!(iso_duration("soon").is_err());
        assert!(iso_duration("0s").is_err());
    }

    #[test]
    fn activate_builds_the_activation_the_webhook_judges() {
        let a = activation_manifest(&args("2h"), "customer-a").expect("manifest");
        assert_eq!(a.metadata.name.as_deref(), Some("fix-4711"));
        assert_eq!(a.metadata.namespace.as_deref(), Some("customer-a"));
        assert_eq!(a.spec.duration, "PT2H");
        assert_eq!(a.spec.ticket, Some(Ticket { system: "ServiceNow".into(), number: "INC4711".into() }));
        assert!(a.metadata.annotations.is_none(), "the requester is stamped by admission, never sent");
        let mut no_reason = args("2h");
        no_reason.reason = " ".into();
        assert!(matches!(activation_manifest(&no_reason, "x"), Err(PluginError::Usage(_))));
        let mut bad_ticket = args("2h");
        bad_ticket.ticket = Some("INC4711".into());
        assert!(matches!(activation_manifest(&bad_ticket, "x"), Err(PluginError::Usage(_))));
    }

    fn activation(name: &str, requester: &str, phase: ActivationPhase) -> RoleActivation {
        let mut a = activation_manifest(&args("2h"), "customer-a").expect("manifest");
        a.metadata.name = Some(name.into());
        a.status = Some(RoleActivationStatus {
            requester: Some(Caller { username: requester.into(), ..Default::default() }),
            phase: Some(phase),
            ..Default::default()
        });
        a
    }

    #[test]
    fn requests_are_filtered_for_the_caller() {
        let mine = activation("a", "t:me", ActivationPhase::Pending);
        let theirs = activation("b", "t:them", ActivationPhase::Pending);
        let active = activation("c", "t:them", ActivationPhase::Active);
        assert!(shown(&mine, Filter::Mine, "t:me") && !shown(&theirs, Filter::Mine, "t:me"));
        assert!(!shown(&mine, Filter::ToApprove, "t:me"), "never one's own");
        assert!(shown(&theirs, Filter::ToApprove, "t:me"));
        assert!(!shown(&active, Filter::ToApprove, "t:me"), "only Pending ones");
        let text = requests_table(&[mine, theirs]).render(false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE") && lines[0].contains("PHASE"), "{text}");
        assert!(lines[1].contains("t:me") && lines[1].contains("Pending"), "{text}");
    }

    #[test]
    fn reviews_name_the_activation_and_the_decision() {
        let r = review_manifest("fix-4711", "customer-a", Decision::Deny, "not now");
        assert_eq!(r.spec.role_activation_ref.name, "fix-4711");
        assert_eq!(r.spec.decision, Decision::Deny);
        assert!(r.metadata.name.as_deref().is_some_and(|n| n.starts_with("deny-fix-4711-")));
    }
}
