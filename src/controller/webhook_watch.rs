//! Whether User Access Administrator may be in force (docs/roles.md): the controller watches
//! the ValidatingWebhookConfiguration named by `--webhook-configuration` and judges it with
//! [`crate::model::user_access::webhook_guards`]. The verdict is published on a watch
//! channel that assignment reconciles read ([`super::context::Context::user_access_withheld`]);
//! each change of verdict re-triggers every assignment, so the rights come and go with the
//! webhook.

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tracing::{info, warn};

use super::caches::Caches;
use super::triggers::Sinks;
use crate::model::user_access::{webhook_guards, WebhookFacts};

/// The verdict: None until the configuration's first list, then Ok (User Access
/// Administrator may be in force) or why not.
pub type Verdict = Option<Result<(), String>>;

/// What the watch needs to judge, fixed for the process's life.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    /// `--webhook-configuration`.
    pub name: Option<String>,
    /// Whether this process serves the webhook.
    pub serving: bool,
    /// The controller's own user name.
    pub controller: Option<String>,
}

impl Watched {
    fn judge(&self, configuration: Option<&ValidatingWebhookConfiguration>) -> Result<(), String> {
        webhook_guards(&WebhookFacts {
            configuration_name: self.name.as_deref(),
            configuration,
            serving: self.serving,
            controller: self.controller.as_deref(),
        })
    }
}

/// Publishes `verdict` when it changed, logs it, and re-triggers every assignment (each
/// re-judges whether its User Access Administrators are in force).
fn publish(verdict: Result<(), String>, out: &tokio::sync::watch::Sender<Verdict>, caches: &Caches, sinks: &Sinks) {
    if out.borrow().as_ref() == Some(&verdict) {
        return;
    }
    match &verdict {
        Ok(()) => info!("User Access Administrator may be in force: the admission webhook judges RoleBindings"),
        Err(why) => warn!(reason = %why, "User Access Administrator is withheld"),
    }
    let first = out.borrow().is_none();
    let _ = out.send(Some(verdict));
    if !first {
        for a in caches.assignments.state() {
            let _ = sinks.assignments.unbounded_send(kube::runtime::reflector::ObjectRef::from_obj(a.as_ref()));
        }
    }
}

/// Runs until the process stops: without a name, or when the name is set, the verdict
/// follows the configuration's watch.
pub async fn run(
    client: Client,
    watched: Watched,
    out: tokio::sync::watch::Sender<Verdict>,
    caches: Caches,
    sinks: Sinks,
) {
    let Some(name) = watched.name.clone() else {
        publish(watched.judge(None), &out, &caches, &sinks);
        return;
    };
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut current: Option<ValidatingWebhookConfiguration> = None;
    let mut listing: Option<ValidatingWebhookConfiguration> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listing = None,
            Ok(Event::InitApply(c)) => listing = Some(c),
            Ok(Event::InitDone) => current = listing.take(),
            Ok(Event::Apply(c)) => current = Some(c),
            Ok(Event::Delete(_)) => current = None,
            Err(e) => {
                warn!(error = %e, configuration = %name, "cannot watch the ValidatingWebhookConfiguration");
                continue;
            }
        }
        publish(watched.judge(current.as_ref()), &out, &caches, &sinks);
    }
}
