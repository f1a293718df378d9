//! The audit's PolicyReports (docs/guardrails.md): one `wgpolicyk8s.io/v1alpha2` PolicyReport
//! per namespace holding definitions, written when that CRD is installed and kept up to date
//! as definitions, assignments, guardrails and namespace labels change. Content is
//! [`crate::model::audit`]'s; this module gathers it from the caches and writes it.
//!
//! The definition and assignment reconciles send the subscription namespace they touched
//! ([`Context::audit`]); the leader's one audit task writes each namespace's report when its
//! content changed (server-side apply), and deletes it once no definition is left. Whether the
//! CRD exists is asked of discovery (which every identity may read), again every few seconds
//! while it is missing: once it appears, every namespace with definitions gets its report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::ResourceExt;
use tracing::{debug, info, warn};

use super::context::Context;
use crate::model::audit::{self, Entry};
use crate::model::keys;
use crate::model::scope::Namespaces;

/// How often a missing PolicyReport CRD is looked for again.
const RECHECK: Duration = Duration::from_secs(3);

fn policy_reports() -> ApiResource {
    ApiResource {
        group: "wgpolicyk8s.io".into(),
        version: "v1alpha2".into(),
        api_version: audit::API_VERSION.into(),
        kind: "PolicyReport".into(),
        plural: "policyreports".into(),
    }
}

/// Whether the API server serves `policyreports.wgpolicyk8s.io/v1alpha2`.
async fn installed(ctx: &Context) -> bool {
    match ctx.client.list_api_group_resources(audit::API_VERSION).await {
        Ok(list) => list.resources.iter().any(|r| r.name == "policyreports"),
        Err(kube::Error::Api(s)) if s.code == 404 => false,
        Err(e) => {
            debug!(error = %e, "PolicyReport discovery failed; trying again");
            false
        }
    }
}

/// The report of `namespace` from the caches (None when it holds no definition), with the
/// content it is compared by (the report stamped 0).
fn report(ctx: &Context, namespace: &str) -> Option<(serde_json::Value, String)> {
    let mut definitions = ctx.caches.definitions_in(namespace);
    definitions.retain(|d| d.metadata.deletion_timestamp.is_none());
    if definitions.is_empty() {
        return None;
    }
    definitions.sort_by_key(|d| d.name_any());
    let labels = Namespaces::get(&ctx.caches, namespace).map(|ns| ns.selector_labels(namespace)).unwrap_or_default();
    let guardrails = ctx.caches.guardrails();
    let catalog = ctx.caches.catalog.current();
    let assignments = ctx.caches.assignments_under(namespace);
    let entries: Vec<Entry> = definitions
        .iter()
        .map(|d| {
            let name = d.name_any();
            let mut mine: Vec<(String, String, String)> = assignments
                .iter()
                .filter(|a| a.spec.registration_definition_ref.name == name)
                .map(|a| (a.namespace().unwrap_or_default(), a.name_any(), a.uid().unwrap_or_default()))
                .collect();
            mine.sort();
            let definition = (name, d.uid().unwrap_or_default());
            Entry::new(definition, &d.spec, mine, &guardrails, &labels, &catalog)
        })
        .collect();
    let content = audit::content(&audit::policy_report(namespace, &entries, 0));
    let now = jiff::Timestamp::now().as_second();
    Some((audit::policy_report(namespace, &entries, now), content))
}

/// Writes or deletes the report of `namespace`; `written` holds the content last written (or
/// found stored) per namespace, so that nothing is written when nothing changed, a restart
/// included. Returns false when a write failed (it is tried again later).
async fn follow(ctx: &Context, namespace: &str, written: &mut HashMap<String, String>) -> bool {
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &policy_reports());
    match report(ctx, namespace) {
        Some((report, content)) => {
            if !written.contains_key(namespace) {
                // First sight since this replica leads: the report a previous leader wrote.
                if let Ok(Some(stored)) = api.get_opt(audit::REPORT_NAME).await {
                    if let Ok(stored) = serde_json::to_value(stored) {
                        written.insert(namespace.to_string(), audit::content(&stored));
                    }
                }
            }
            if written.get(namespace) == Some(&content) {
                return true;
            }
            let params = PatchParams::apply(keys::MANAGER).force();
            match api.patch(audit::REPORT_NAME, &params, &Patch::Apply(&report)).await {
                Ok(_) => {
                    debug!(%namespace, "PolicyReport written");
                    written.insert(namespace.to_string(), content);
                    true
                }
                Err(e) => {
                    warn!(%namespace, error = %e, "could not write the PolicyReport; trying again");
                    false
                }
            }
        }
        None => {
            // Nothing written since this replica leads, and nothing stored: nothing to delete
            // (a restart sends no delete either).
            if written.remove(namespace).is_none() && matches!(api.get_opt(audit::REPORT_NAME).await, Ok(None)) {
                return true;
            }
            match api.delete(audit::REPORT_NAME, &DeleteParams::default()).await {
                Ok(_) => true,
                Err(kube::Error::Api(s)) if s.code == 404 => true,
                Err(e) => {
                    warn!(%namespace, error = %e, "could not delete the PolicyReport; trying again");
                    false
                }
            }
        }
    }
}

/// Every namespace holding a definition.
fn every_namespace(ctx: &Context) -> BTreeSet<String> {
    ctx.caches.definitions.state().iter().filter_map(|d| d.namespace()).collect()
}

/// Runs the audit: `namespaces` are the subscription namespaces whose report may have
/// changed; `leading` says whether this replica leads (only the leader writes). Ends with the
/// stream.
pub async fn run(
    ctx: Arc<Context>,
    namespaces: impl Stream<Item = String> + Unpin,
    leading: tokio::sync::watch::Receiver<bool>,
) {
    if ctx.caches_synced().await.is_err() {
        return;
    }
    let mut namespaces = namespaces;
    let mut pending: BTreeSet<String> = BTreeSet::new();
    let mut written: HashMap<String, String> = HashMap::new();
    let mut present = false;
    // When the CRD was last looked for; None: never, since this replica leads.
    let mut looked: Option<tokio::time::Instant> = None;
    let mut recheck = tokio::time::interval(RECHECK);
    loop {
        tokio::select! {
            next = namespaces.next() => {
                let Some(first) = next else { return };
                pending.insert(first);
                // Whatever else is already waiting, in the same pass.
                while let Some(Some(more)) = namespaces.next().now_or_never() {
                    pending.insert(more);
                }
            }
            _ = recheck.tick() => {}
        }
        if !*leading.borrow() {
            // A follower writes nothing; once it leads, it starts afresh.
            (present, looked) = (false, None);
            pending.clear();
            written.clear();
            continue;
        }
        if !present && looked.is_none_or(|at| at.elapsed() >= RECHECK) {
            looked = Some(tokio::time::Instant::now());
            if installed(&ctx).await {
                info!("PolicyReport CRD found: writing the audit's reports");
                present = true;
                pending.extend(every_namespace(&ctx));
            }
        }
        if !present {
            pending.clear();
            continue;
        }
        let mut failed = BTreeMap::new();
        for namespace in std::mem::take(&mut pending) {
            if !follow(&ctx, &namespace, &mut written).await {
                failed.insert(namespace, ());
            }
        }
        if !failed.is_empty() && !installed(&ctx).await {
            info!("PolicyReport CRD gone: the audit writes no reports");
            present = false;
            written.clear();
            continue;
        }
        pending.extend(failed.into_keys());
    }
}
