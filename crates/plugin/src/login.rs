//! `kubectl lighthouse login --context NAME --broker URL …`: writes the kubeconfig user entry
//! that signs in through kube-lighthouse's broker (an exec credential plugin entry running
//! `kubectl lighthouse credential`, see [`super::credential`]) and the context that uses it,
//! and the cluster entry when `--server` is given (docs/install.md, "Sign-in through
//! kube-lighthouse").
//!
//! Every other entry of the kubeconfig is left as it is: the file is edited as a YAML tree
//! ([`apply`], pure and unit-tested), only the named user, context and cluster are written. An
//! existing user or cluster entry of the same name with other content is replaced only with
//! `--overwrite`; what changes is printed. The file is rewritten from that tree: its comments,
//! and its quoting and ordering of keys, are not kept.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_yaml::{Mapping, Value};
use thiserror::Error;

use super::cli::{GlobalArgs, LoginArgs};
use super::credential::EXEC_API_V1;
use super::PluginError;

/// Why the kubeconfig was not written.
#[derive(Debug, Error)]
pub enum LoginError {
    /// `--context` is missing.
    #[error("login needs --context NAME: the kubeconfig context to write")]
    NoContext,
    /// Neither the context nor the flags name a cluster.
    #[error(
        "the context {0:?} does not exist yet: pass --server URL (and --server-certificate-authority FILE) to write its cluster entry, or --cluster NAME for an existing one"
    )]
    NoCluster(String),
    /// `--cluster` names a cluster entry the kubeconfig lacks.
    #[error("no cluster entry {0:?} in the kubeconfig: pass --server URL to write it")]
    UnknownCluster(String),
    /// The kubeconfig is not a kubeconfig.
    #[error("{path}: not a kubeconfig ({reason}); nothing was written")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No kubeconfig path is known (no `--kubeconfig`, `$KUBECONFIG` or home directory).
    #[error("no kubeconfig path: pass --kubeconfig")]
    NoPath,
    /// Entries of the same names exist with other content, and `--overwrite` is not given.
    #[error(
        "the kubeconfig already has {}, with other content; pass --overwrite to replace {} (or --user NAME / --cluster NAME to write new entries); nothing was written",
        .0.join(" and "),
        if .0.len() == 1 { "it" } else { "them" }
    )]
    Exists(Vec<String>),
}

impl From<LoginError> for PluginError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::NoContext
            | LoginError::NoCluster(_)
            | LoginError::UnknownCluster(_)
            | LoginError::Exists(_) => PluginError::Usage(e.to_string()),
            other => PluginError::Credential(other.to_string()),
        }
    }
}

/// The entries `login` writes, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Entries {
    /// The context's name.
    pub context: String,
    /// The user entry's name and its `user` (the exec plugin configuration).
    pub user: (String, Value),
    /// The cluster entry to write (name and `cluster`), or the name of an existing one; None
    /// keeps the existing context's cluster.
    pub cluster: Option<(String, Option<Value>)>,
    /// The context's namespace, when given.
    pub namespace: Option<String>,
    /// Replace existing user and cluster entries of the same names (`--overwrite`).
    pub overwrite: bool,
}

/// What [`apply`] did to one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// There was no entry of that name.
    Added,
    /// An entry of that name with other content was replaced (user, cluster) or updated in
    /// place (context: its cluster, user and namespace; its other fields kept).
    Replaced,
    /// The entry already said exactly this.
    Unchanged,
}

/// One entry [`apply`] wrote: its kind (`user`, `context`, `cluster`), name and outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `user`, `context` or `cluster`.
    pub kind: &'static str,
    /// The entry's name.
    pub name: String,
    /// Added, replaced or unchanged.
    pub outcome: Outcome,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match (self.kind, &self.outcome) {
            (_, Outcome::Added) => "added",
            ("context", Outcome::Replaced) => "updated",
            (_, Outcome::Replaced) => "replaced",
            (_, Outcome::Unchanged) => "unchanged",
        };
        write!(f, "{} {:?} {what}", self.kind, self.name)
    }
}

/// The arguments of `kubectl lighthouse credential` in the user entry, paths made absolute
/// (kubectl runs the plugin from whatever directory it is in).
pub fn credential_args(args: &LoginArgs) -> Vec<String> {
    let mut out = vec!["credential".to_string(), "--broker".into(), args.broker.clone()];
    if let Some(ca) = &args.certificate_authority {
        out.extend(["--certificate-authority".into(), absolute(ca).display().to_string()]);
    }
    if let Some(command) = &args.token_command {
        out.extend(["--token-command".into(), command.clone()]);
    }
    if let Some(file) = &args.token_file {
        out.extend(["--token-file".into(), absolute(file).display().to_string()]);
    }
    if let Some(audience) = &args.audience {
        out.extend(["--audience".into(), audience.clone()]);
    }
    out
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The kubeconfig `user` of the exec plugin: client-go runs `command credential …` and reads
/// its `ExecCredential`; `interactiveMode: IfAvailable` lets a token command such as kubelogin
/// prompt (device code) when a terminal is there.
pub fn user_entry(args: &LoginArgs) -> Value {
    let mut exec = Mapping::new();
    exec.insert("apiVersion".into(), EXEC_API_V1.into());
    exec.insert("command".into(), args.exec_command.clone().into());
    exec.insert("args".into(), Value::Sequence(credential_args(args).into_iter().map(Value::from).collect()));
    exec.insert("interactiveMode".into(), "IfAvailable".into());
    exec.insert("provideClusterInfo".into(), false.into());
    exec.insert(
        "installHint".into(),
        "kubectl lighthouse signs you in through kube-lighthouse: install the kubectl-lighthouse plugin (docs/plugin.md), then run kubectl again".into(),
    );
    let mut user = Mapping::new();
    user.insert("exec".into(), Value::Mapping(exec));
    Value::Mapping(user)
}

/// The kubeconfig `cluster` of `--server`, with `--server-certificate-authority`'s PEM
/// embedded (`certificate-authority-data`).
///
/// # Errors
/// [`LoginError::Io`] when the CA file cannot be read.
pub fn cluster_entry(server: &str, certificate_authority: Option<&Path>) -> Result<Value, LoginError> {
    let mut cluster = Mapping::new();
    cluster.insert("server".into(), server.into());
    if let Some(path) = certificate_authority {
        let pem = std::fs::read(path).map_err(|source| LoginError::Io { path: path.display().to_string(), source })?;
        cluster
            .insert("certificate-authority-data".into(), base64::engine::general_purpose::STANDARD.encode(pem).into());
    }
    Ok(Value::Mapping(cluster))
}

/// The named entries `login` writes, from its arguments.
///
/// # Errors
/// [`LoginError`] for a missing context or an unreadable CA file.
pub fn entries(global: &GlobalArgs, args: &LoginArgs) -> Result<Entries, LoginError> {
    let context = global.context.clone().filter(|c| !c.is_empty()).ok_or(LoginError::NoContext)?;
    let user = args.user.clone().unwrap_or_else(|| format!("{context}-lighthouse"));
    let cluster = match (&args.server, &args.cluster) {
        (Some(server), name) => Some((
            name.clone().unwrap_or_else(|| context.clone()),
            Some(cluster_entry(server, args.server_certificate_authority.as_deref())?),
        )),
        (None, Some(name)) => Some((name.clone(), None)),
        (None, None) => None,
    };
    Ok(Entries {
        context,
        user: (user, user_entry(args)),
        cluster,
        namespace: global.namespace.clone(),
        overwrite: args.overwrite,
    })
}

pub(crate) fn named_list<'a>(doc: &'a mut Mapping, key: &str) -> Result<&'a mut Vec<Value>, String> {
    let list = doc.entry(key.into()).or_insert_with(|| Value::Sequence(Vec::new()));
    if list.is_null() {
        *list = Value::Sequence(Vec::new());
    }
    list.as_sequence_mut().ok_or_else(|| format!("{key} is not a list"))
}

pub(crate) fn find<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|e| e.get("name").and_then(Value::as_str) == Some(name))
}

/// Puts `{name, <field>: value}` in place of the entry called `name`, or appends it; says
/// which.
pub(crate) fn upsert(list: &mut Vec<Value>, field: &str, name: &str, value: Value) -> Outcome {
    let mut entry = Mapping::new();
    entry.insert("name".into(), name.into());
    entry.insert(field.into(), value);
    let entry = Value::Mapping(entry);
    match list.iter_mut().find(|e| e.get("name").and_then(Value::as_str) == Some(name)) {
        Some(existing) if *existing == entry => Outcome::Unchanged,
        Some(existing) => {
            *existing = entry;
            Outcome::Replaced
        }
        None => {
            list.push(entry);
            Outcome::Added
        }
    }
}

/// Whether writing `{name, <field>: value}` would replace an entry of that name with other
/// content.
fn would_replace(list: &[Value], field: &str, name: &str, value: &Value) -> bool {
    find(list, name).is_some_and(|e| e.get(field) != Some(value))
}

/// The kubeconfig `doc` with `entries` written, and what changed: the user added (or, with
/// `overwrite`, replaced), the cluster when one is given (likewise), the context pointing at
/// both (keeping its other fields, its namespace unless one is given). `current-context` is set
/// only when the file has none. Nothing else changes.
///
/// # Errors
/// A message when `doc` is not a kubeconfig; [`LoginError::NoCluster`] or
/// [`LoginError::UnknownCluster`] when no usable cluster is named; [`LoginError::Exists`]
/// naming the user and cluster entries that would be replaced, without `overwrite`.
pub fn apply(doc: Value, entries: &Entries) -> Result<(Value, Vec<Change>), Result<LoginError, String>> {
    let mut doc = config_mapping(doc).map_err(Err)?;
    let (user_name, user) = &entries.user;
    if !entries.overwrite {
        let mut clash = Vec::new();
        if would_replace(named_list(&mut doc, "users").map_err(Err)?, "user", user_name, user) {
            clash.push(format!("a user entry {user_name:?}"));
        }
        if let Some((name, Some(cluster))) = &entries.cluster {
            if would_replace(named_list(&mut doc, "clusters").map_err(Err)?, "cluster", name, cluster) {
                clash.push(format!("a cluster entry {name:?}"));
            }
        }
        if !clash.is_empty() {
            return Err(Ok(LoginError::Exists(clash)));
        }
    }
    let mut changes = Vec::new();
    let existing =
        find(named_list(&mut doc, "contexts").map_err(Err)?, &entries.context).and_then(|e| e.get("context")).cloned();
    let cluster = match (&entries.cluster, &existing) {
        (Some((name, Some(cluster))), _) => {
            let outcome = upsert(named_list(&mut doc, "clusters").map_err(Err)?, "cluster", name, cluster.clone());
            changes.push(Change { kind: "cluster", name: name.clone(), outcome });
            name.clone()
        }
        (Some((name, None)), _) => {
            if find(named_list(&mut doc, "clusters").map_err(Err)?, name).is_none() {
                return Err(Ok(LoginError::UnknownCluster(name.clone())));
            }
            name.clone()
        }
        (None, Some(context)) => match context.get("cluster").and_then(Value::as_str) {
            Some(name) => name.to_string(),
            None => return Err(Ok(LoginError::NoCluster(entries.context.clone()))),
        },
        (None, None) => return Err(Ok(LoginError::NoCluster(entries.context.clone()))),
    };
    let outcome = upsert(named_list(&mut doc, "users").map_err(Err)?, "user", user_name, user.clone());
    changes.push(Change { kind: "user", name: user_name.clone(), outcome });
    let mut context = existing.and_then(|c| c.as_mapping().cloned()).unwrap_or_default();
    context.insert("cluster".into(), cluster.into());
    context.insert("user".into(), user_name.clone().into());
    if let Some(namespace) = &entries.namespace {
        context.insert("namespace".into(), namespace.clone().into());
    }
    let outcome =
        upsert(named_list(&mut doc, "contexts").map_err(Err)?, "context", &entries.context, Value::Mapping(context));
    changes.push(Change { kind: "context", name: entries.context.clone(), outcome });
    let current = doc.get("current-context").and_then(Value::as_str).unwrap_or("");
    if current.is_empty() {
        doc.insert("current-context".into(), entries.context.clone().into());
    }
    Ok((Value::Mapping(doc), changes))
}

/// The top-level mapping of a kubeconfig document: a new `kind: Config` one for an empty file.
///
/// # Errors
/// A message when `doc` is not a mapping or its `kind` is not `Config`.
pub fn config_mapping(doc: Value) -> Result<Mapping, String> {
    let doc = match doc {
        Value::Null => {
            let mut m = Mapping::new();
            m.insert("apiVersion".into(), "v1".into());
            m.insert("kind".into(), "Config".into());
            m
        }
        Value::Mapping(m) => m,
        _ => return Err("not a mapping".into()),
    };
    match doc.get("kind").and_then(Value::as_str) {
        Some(kind) if kind != "Config" => Err(format!("kind {kind}")),
        _ => Ok(doc),
    }
}

/// The kubeconfig file at `path` as YAML; `Null` when there is no such file (kubectl's own
/// reading: a missing file is an empty configuration).
///
/// # Errors
/// [`LoginError::Io`] when the file cannot be read; [`LoginError::Malformed`] when it is not YAML.
pub fn read_document(path: &Path) -> Result<Value, LoginError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(LoginError::Io { path: path.display().to_string(), source }),
    };
    serde_yaml::from_str(&text)
        .map_err(|e| LoginError::Malformed { path: path.display().to_string(), reason: e.to_string() })
}

/// Only the entries `login` writes, as a kubeconfig: what `--dry-run` prints. A context that
/// keeps its cluster shows `<the context's cluster>` in its place.
pub fn preview(entries: &Entries) -> Value {
    let entry = |field: &str, name: &str, value: Value| {
        let mut m = Mapping::new();
        m.insert("name".into(), name.into());
        m.insert(field.into(), value);
        Value::Mapping(m)
    };
    let mut doc = Mapping::new();
    doc.insert("apiVersion".into(), "v1".into());
    doc.insert("kind".into(), "Config".into());
    if let Some((name, Some(cluster))) = &entries.cluster {
        doc.insert("clusters".into(), Value::Sequence(vec![entry("cluster", name, cluster.clone())]));
    }
    let (user_name, user) = &entries.user;
    doc.insert("users".into(), Value::Sequence(vec![entry("user", user_name, user.clone())]));
    let mut context = Mapping::new();
    let cluster = entries.cluster.as_ref().map_or("<the context's cluster>", |(name, _)| name.as_str());
    context.insert("cluster".into(), cluster.into());
    context.insert("user".into(), user_name.clone().into());
    if let Some(namespace) = &entries.namespace {
        context.insert("namespace".into(), namespace.clone().into());
    }
    doc.insert("contexts".into(), Value::Sequence(vec![entry("context", &entries.context, Value::Mapping(context))]));
    Value::Mapping(doc)
}

/// The kubeconfig file `login` writes: `--kubeconfig`, else the first file of `$KUBECONFIG`,
/// else `~/.kube/config` (where kubectl looks).
///
/// # Errors
/// [`LoginError::NoPath`].
pub fn kubeconfig_path(global: &GlobalArgs) -> Result<PathBuf, LoginError> {
    if let Some(path) = &global.kubeconfig {
        return Ok(path.clone());
    }
    if let Some(first) =
        std::env::var_os("KUBECONFIG").and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
    {
        return Ok(first);
    }
    dirs::home_dir().map(|h| h.join(".kube").join("config")).ok_or(LoginError::NoPath)
}

pub(crate) fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension(format!("lighthouse-{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        // A kubeconfig holds credentials: the user's alone unless the file says otherwise.
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
        options.mode(mode);
    }
    let written = options.open(&temporary).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    Ok(())
}

/// `login`: writes (or with `--dry-run` prints) the user, context and cluster entries.
///
/// # Errors
/// [`PluginError`] for a missing context or cluster, an unreadable or malformed kubeconfig,
/// or a failed write.
pub async fn run(global: &GlobalArgs, args: &LoginArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    super::broker::issuer_url(&args.broker).map_err(|e| PluginError::Usage(e.to_string()))?;
    let entries = entries(global, args)?;
    let malformed = |path: &Path, reason: String| LoginError::Malformed { path: path.display().to_string(), reason };
    if args.dry_run {
        let doc = preview(&entries);
        out.write_all(serde_yaml::to_string(&doc).map_err(|e| PluginError::Encode(e.to_string()))?.as_bytes())?;
        return Ok(());
    }
    let path = kubeconfig_path(global)?;
    let doc = read_document(&path)?;
    let (doc, changes) = apply(doc, &entries).map_err(|e| e.unwrap_or_else(|reason| malformed(&path, reason)))?;
    if changes.iter().any(|c| c.outcome != Outcome::Unchanged) {
        let text = serde_yaml::to_string(&doc).map_err(|e| PluginError::Encode(e.to_string()))?;
        write_file(&path, &text).map_err(|source| LoginError::Io { path: path.display().to_string(), source })?;
        writeln!(out, "Wrote {} (its comments are not kept):", path.display())?;
    } else {
        writeln!(out, "Nothing to write in {}:", path.display())?;
    }
    for change in &changes {
        writeln!(out, "  {change}")?;
    }
    writeln!(out, "Try: kubectl --context {} auth whoami", entries.context)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login_args() -> LoginArgs {
        LoginArgs {
            broker: "https://lh.example.com/federation".into(),
            token_command: Some(
                "kubelogin get-token --login azurecli --server-id 6dae42f8-4368-4678-94ff-3960e28e3630".into(),
            ),
            exec_command: "kubectl-lighthouse".into(),
            ..Default::default()
        }
    }

    fn global(context: &str) -> GlobalArgs {
        GlobalArgs { context: Some(context.into()), ..Default::default() }
    }

    const EXISTING: &str = r#"
apiVersion: v1
kind: Config
current-context: other
preferences: {colors: true}
clusters:
- name: other
  cluster: {server: "https://other:6443", insecure-skip-tls-verify: true}
- name: customer
  cluster: {server: "https://customer:6443"}
users:
- name: other
  user: {token: keep-me}
contexts:
- name: other
  context: {cluster: other, user: other}
- name: customer-a
  context: {cluster: customer, user: old, namespace: team-a, extensions: [{name: x, extension: {y: 1}}]}
"#;

    #[test]
    fn the_user_entry_runs_the_credential_plugin() {
        let mut args = login_args();
        args.certificate_authority = Some("/etc/lh/ca.pem".into());
        args.audience = Some("kube-lighthouse".into());
        let user = user_entry(&args);
        let exec = user.get("exec").expect("exec");
        assert_eq!(exec["apiVersion"], EXEC_API_V1);
        assert_eq!(exec["command"], "kubectl-lighthouse");
        assert_eq!(exec["interactiveMode"], "IfAvailable", "required by v1, and lets kubelogin prompt");
        let args: Vec<&str> = exec["args"].as_sequence().expect("args").iter().filter_map(Value::as_str).collect();
        assert_eq!(
            args,
            [
                "credential",
                "--broker",
                "https://lh.example.com/federation",
                "--certificate-authority",
                "/etc/lh/ca.pem",
                "--token-command",
                "kubelogin get-token --login azurecli --server-id 6dae42f8-4368-4678-94ff-3960e28e3630",
                "--audience",
                "kube-lighthouse",
            ]
        );
        let from_file = LoginArgs { token_command: None, token_file: Some("token.jwt".into()), ..login_args() };
        let args = credential_args(&from_file);
        let file = args.iter().skip_while(|a| *a != "--token-file").nth(1).expect("file");
        assert!(Path::new(file).is_absolute(), "{file}");
    }

    #[test]
    fn login_replaces_only_its_user_and_context() {
        let doc: Value = serde_yaml::from_str(EXISTING).expect("yaml");
        let entries = entries(&global("customer-a"), &login_args()).expect("entries");
        let (written, changes) = apply(doc.clone(), &entries).expect("apply");
        let outcomes: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(outcomes, [r#"user "customer-a-lighthouse" added"#, r#"context "customer-a" updated"#]);
        let users = written["users"].as_sequence().expect("users");
        assert_eq!(users.len(), 2);
        assert_eq!(users[0], doc["users"][0], "other users untouched");
        assert_eq!(users[1]["name"], "customer-a-lighthouse");
        assert_eq!(users[1]["user"], user_entry(&login_args()));
        assert_eq!(written["clusters"], doc["clusters"], "clusters untouched");
        assert_eq!(written["contexts"][0], doc["contexts"][0], "other contexts untouched");
        let context = &written["contexts"][1]["context"];
        assert_eq!(context["cluster"], "customer", "the context keeps its cluster");
        assert_eq!(context["user"], "customer-a-lighthouse");
        assert_eq!(context["namespace"], "team-a", "and its namespace");
        assert_eq!(context["extensions"], doc["contexts"][1]["context"]["extensions"]);
        assert_eq!(written["current-context"], "other", "the current context stays");
        assert_eq!(written["preferences"], doc["preferences"]);
        // Twice is the same as once.
        let (again, changes) = apply(written.clone(), &entries).expect("again");
        assert_eq!(again, written);
        assert!(changes.iter().all(|c| c.outcome == Outcome::Unchanged), "{changes:?}");
    }

    #[test]
    fn login_writes_a_new_context_and_cluster_from_server() {
        let dir = std::env::temp_dir().join(format!("kl-login-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").expect("write");
        let args = LoginArgs {
            server: Some("https://aks.example.com:443".into()),
            server_certificate_authority: Some(ca),
            user: Some("me".into()),
            ..login_args()
        };
        let global = GlobalArgs { namespace: Some("web".into()), ..global("fabrikam") };
        let (written, changes) = apply(Value::Null, &entries(&global, &args).expect("entries")).expect("apply");
        assert!(changes.iter().all(|c| c.outcome == Outcome::Added), "{changes:?}");
        assert_eq!(written["apiVersion"], "v1");
        assert_eq!(written["kind"], "Config");
        assert_eq!(written["current-context"], "fabrikam", "an empty kubeconfig gets a current context");
        assert_eq!(written["clusters"][0]["name"], "fabrikam");
        assert_eq!(written["clusters"][0]["cluster"]["server"], "https://aks.example.com:443");
        let data = written["clusters"][0]["cluster"]["certificate-authority-data"].as_str().expect("ca data");
        let pem = base64::engine::general_purpose::STANDARD.decode(data).expect("b64");
        assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert_eq!(written["contexts"][0]["context"]["user"], "me");
        assert_eq!(written["contexts"][0]["context"]["namespace"], "web");
        // Parsed by kube's own kubeconfig reader.
        let text = serde_yaml::to_string(&written).expect("yaml");
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).expect("a kubeconfig kube reads");
        let exec = kubeconfig.auth_infos[0].auth_info.as_ref().and_then(|a| a.exec.as_ref()).expect("exec");
        assert_eq!(exec.command.as_deref(), Some("kubectl-lighthouse"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn login_needs_a_context_and_a_cluster() {
        assert!(matches!(entries(&GlobalArgs::default(), &login_args()), Err(LoginError::NoContext)));
        let doc: Value = serde_yaml::from_str(EXISTING).expect("yaml");
        let new = entries(&global("new"), &login_args()).expect("entries");
        let err = apply(doc.clone(), &new).expect_err("no cluster");
        assert!(matches!(err, Ok(LoginError::NoCluster(ref c)) if c == "new"), "{err:?}");
        let named =
            entries(&global("new"), &LoginArgs { cluster: Some("customer".into()), ..login_args() }).expect("e");
        let (written, _) = apply(doc.clone(), &named).expect("existing cluster");
        assert_eq!(written["contexts"][2]["context"]["cluster"], "customer");
        let unknown = entries(&global("new"), &LoginArgs { cluster: Some("nope".into()), ..login_args() }).expect("e");
        assert!(matches!(apply(doc, &unknown), Err(Ok(LoginError::UnknownCluster(_)))));
        assert!(apply(serde_yaml::from_str("[1]").expect("yaml"), &new).expect_err("list").is_err());
        assert!(apply(serde_yaml::from_str("kind: Pod").expect("yaml"), &new).expect_err("pod").is_err());
        let server =
            entries(&global("new"), &LoginArgs { server: Some("https://s".into()), ..login_args() }).expect("e");
        let err = apply(serde_yaml::from_str("kind: Config\nusers: 3").expect("yaml"), &server).expect_err("users");
        assert_eq!(err.expect_err("malformed"), "users is not a list");
    }

    #[test]
    fn login_replaces_an_existing_user_or_cluster_only_with_overwrite() {
        let doc: Value = serde_yaml::from_str(EXISTING).expect("yaml");
        // A user entry "other" exists (a static token): login must not silently replace it.
        let clashing = LoginArgs { user: Some("other".into()), ..login_args() };
        let err = apply(doc.clone(), &entries(&global("customer-a"), &clashing).expect("e")).expect_err("exists");
        let Ok(e @ LoginError::Exists(_)) = err else { panic!("{err:?}") };
        let message = e.to_string();
        assert!(message.contains(r#"a user entry "other""#) && message.contains("--overwrite"), "{message}");
        // So does a cluster entry of the same name with another server.
        let server =
            LoginArgs { server: Some("https://new:6443".into()), cluster: Some("other".into()), ..login_args() };
        let err = apply(doc.clone(), &entries(&global("customer-a"), &server).expect("e")).expect_err("exists");
        assert!(matches!(&err, Ok(LoginError::Exists(clash)) if clash == &[r#"a cluster entry "other""#]), "{err:?}");
        // With --overwrite, both are replaced, and said so.
        let both = LoginArgs { overwrite: true, ..LoginArgs { user: Some("other".into()), ..server } };
        let (written, changes) = apply(doc.clone(), &entries(&global("customer-a"), &both).expect("e")).expect("ok");
        let outcomes: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            outcomes,
            [r#"cluster "other" replaced"#, r#"user "other" replaced"#, r#"context "customer-a" updated"#]
        );
        assert_eq!(written["users"][0]["user"], user_entry(&both));
        assert_eq!(written["clusters"][0]["cluster"]["server"], "https://new:6443");
    }

    #[tokio::test]
    async fn login_refuses_to_replace_a_user_entry_and_leaves_the_file_as_it_was() {
        let dir = std::env::temp_dir().join(format!("kl-login-exists-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("config");
        std::fs::write(&path, EXISTING).expect("write");
        let global =
            GlobalArgs { kubeconfig: Some(path.clone()), context: Some("customer-a".into()), ..Default::default() };
        let args = LoginArgs { user: Some("other".into()), ..login_args() };
        let err = run(&global, &args, &mut Vec::new()).await.expect_err("exists");
        assert!(matches!(err, PluginError::Usage(_)), "{err:?}");
        assert!(err.to_string().contains("--overwrite"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), EXISTING, "nothing was written");
        let mut out = Vec::new();
        run(&global, &LoginArgs { overwrite: true, ..args }, &mut out).await.expect("overwrite");
        let said = String::from_utf8_lossy(&out);
        assert!(
            said.contains(r#"user "other" replaced"#) && said.contains(r#"context "customer-a" updated"#),
            "{said}"
        );
        assert!(said.contains("comments are not kept"), "{said}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn dry_run_shows_only_what_login_writes() {
        let kept = preview(&entries(&global("customer-a"), &login_args()).expect("entries"));
        assert!(kept.get("clusters").is_none());
        assert_eq!(kept["users"][0]["name"], "customer-a-lighthouse");
        assert_eq!(kept["contexts"][0]["context"]["cluster"], "<the context's cluster>");
        let args = LoginArgs { server: Some("https://aks:443".into()), ..login_args() };
        let with_server = preview(&entries(&global("c"), &args).expect("entries"));
        assert_eq!(with_server["clusters"][0]["cluster"]["server"], "https://aks:443");
        assert!(with_server.get("current-context").is_none());
    }

    #[tokio::test]
    async fn login_edits_the_file_in_place_keeping_its_mode() {
        let dir = std::env::temp_dir().join(format!("kl-login-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("kube").join("config");
        let global = GlobalArgs { kubeconfig: Some(path.clone()), context: Some("c".into()), ..Default::default() };
        let args = LoginArgs { server: Some("https://aks:443".into()), ..login_args() };
        let mut out = Vec::new();
        run(&global, &args, &mut out).await.expect("login");
        assert!(String::from_utf8_lossy(&out).contains("kubectl --context c auth whoami"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        }
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("kube reads it");
        assert_eq!(kubeconfig.current_context.as_deref(), Some("c"));
        std::fs::write(&path, "kind: Config\nclusters: [oops").expect("corrupt");
        let err = run(&global, &args, &mut Vec::new()).await.expect_err("malformed").to_string();
        assert!(err.contains("not a kubeconfig") && err.contains("nothing was written"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "kind: Config\nclusters: [oops");
        let _ = std::fs::remove_dir_all(dir);
    }
}
