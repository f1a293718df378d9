//! Azure Lighthouse onboarding templates, imported unchanged (issue 17, SPEC §11 `import`;
//! docs/azure.md).
//!
//! An ARM deployment template (as in Azure's public samples, `Azure/Azure-Lighthouse-samples`
//! `templates/`, and as Partner Center generates them), its parameters file and `--set`
//! overrides become the `RegistrationDefinition`s and `RegistrationAssignment`s that grant the
//! same principals the same roles at the same scope. Pure: no client, no file IO; the caller
//! reads the files ([`SourceFile::from_bytes`]) and applies the result.
//!
//! ```text
//!  template.json ─┐                         ┌► RegistrationDefinition  (subscription namespace)
//!  parameters     ├► template::evaluate ──► import::map
//!  --set          ┘  (expression: the ARM   └► RegistrationAssignment  (subscription or
//!                     template language)                                 resource-group namespace)
//! ```
//!
//! Either everything imports or nothing does: [`import`] returns every error it found
//! ([`ImportErrors`]), each naming the template path and field. See `docs/azure.md`.

mod error;
pub mod expression;
pub mod import;
pub mod limits;
pub mod roles;
pub mod template;

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use error::{ImportError, ImportErrors};

use crate::api::{RegistrationAssignment, RegistrationDefinition};
use crate::model::catalog::Catalog;
use crate::model::keys;
use template::{GivenValue, Path};

/// A JSON file the caller has read: its name (as shown in messages and recorded in the
/// `kubelighthouse.io/imported-from` annotation), the SHA-256 of its bytes, and its content.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceFile {
    /// The file's name, as the caller wants it shown (its base name, usually).
    pub name: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// The parsed content.
    pub json: Value,
}

impl SourceFile {
    /// Parses and hashes the bytes of a file named `name`.
    ///
    /// # Errors
    /// [`ImportError::Json`] with the line and column when the bytes are not JSON;
    /// [`ImportError::TooDeep`] when they nest deeper than [`limits::MAX_DEPTH`]: with the
    /// JSON path (`(NAME) resources[0]...`), or `NAME:LINE:COLUMN` past `serde_json`'s own
    /// recursion limit (128), which stops the parser first.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<SourceFile, ImportError> {
        let json = serde_json::from_slice(bytes).map_err(|e| json_error(name, &e))?;
        if let Some(path) = limits::too_deep_at(&json, &format!("({name}) ")) {
            return Err(ImportError::TooDeep { path, limit: limits::MAX_DEPTH });
        }
        let sha256 = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        Ok(SourceFile { name: name.to_string(), sha256, json })
    }

    /// `<name>@sha256:<hex>`: the value of the source annotations.
    pub fn reference(&self) -> String {
        format!("{}@sha256:{}", self.name, self.sha256)
    }
}

/// A parse error of `serde_json` as an [`ImportError`]: past its recursion limit (left on;
/// 128, deeper than [`limits::MAX_DEPTH`]) the file is too deep for the import's limit.
pub(crate) fn json_error(name: &str, e: &serde_json::Error) -> ImportError {
    if e.to_string().starts_with("recursion limit exceeded") {
        return ImportError::TooDeep { path: format!("{name}:{}:{}", e.line(), e.column()), limit: limits::MAX_DEPTH };
    }
    ImportError::Json { file: name.to_string(), line: e.line(), column: e.column(), message: e.to_string() }
}

/// Everything [`import`] needs, from the command line of
/// `kubectl lighthouse import -f TEMPLATE [-p PARAMETERS] -n SUBSCRIPTION_NS
/// [--resource-group RG=NS ...] [--set NAME=VALUE ...]`.
pub struct ImportInput<'a> {
    /// `-f`: the deployment template.
    pub template: &'a SourceFile,
    /// `-p`: the parameters file (`{"parameters": {"NAME": {"value": ...}}}`).
    pub parameters: Option<&'a SourceFile>,
    /// `--set NAME=VALUE`, in order ([`parse_set`]); they override the parameters file.
    pub set: &'a [(String, String)],
    /// `-n`: the subscription namespace. It also stands for the subscription ID in
    /// `subscription()` and `resourceId()`.
    pub subscription_namespace: &'a str,
    /// `--resource-group RG=NAMESPACE` ([`parse_resource_group`]): explicit mappings.
    pub resource_groups: &'a BTreeMap<String, String>,
    /// The resource-group namespaces of the subscription namespace (namespaces labelled
    /// `kubelighthouse.io/subscription: <subscription namespace>`): a resource group without
    /// an explicit mapping goes to the one of the same name (case-insensitive).
    pub resource_group_namespaces: &'a [String],
    /// For a resource-group deployment template (`deploymentTemplate.json` schema): the
    /// resource group it is deployed to. Unused for subscription templates.
    pub deployment_resource_group: Option<&'a str>,
    /// The role catalog (SPEC §4): every role GUID must be in it.
    pub catalog: &'a Catalog,
}

/// What a template imports to, in template order. Each object carries the annotation
/// `kubelighthouse.io/imported-from` (and `kubelighthouse.io/imported-parameters` when a
/// parameters file was given).
#[derive(Clone, Debug)]
pub struct Imported {
    /// In the subscription namespace.
    pub definitions: Vec<RegistrationDefinition>,
    /// In the subscription namespace or a resource-group namespace of it.
    pub assignments: Vec<RegistrationAssignment>,
    /// What the user should know (`PATH: message`), printed on stderr: a `$schema` that says a
    /// wider scope than what the template deploys.
    pub warnings: Vec<String>,
}

/// Splits a `--set NAME=VALUE` argument at the first `=`.
///
/// # Errors
/// [`ImportError::InvalidArgument`] when there is no `=` or no name.
pub fn parse_set(arg: &str) -> Result<(String, String), ImportError> {
    split_pair(arg, "--set", "NAME=VALUE")
}

/// Splits a `--resource-group RG=NAMESPACE` argument at the first `=`.
///
/// # Errors
/// [`ImportError::InvalidArgument`] when there is no `=`, no resource group or no namespace.
pub fn parse_resource_group(arg: &str) -> Result<(String, String), ImportError> {
    let (rg, ns) = split_pair(arg, "--resource-group", "RESOURCE_GROUP=NAMESPACE")?;
    if ns.is_empty() {
        return Err(ImportError::InvalidArgument {
            path: format!("--resource-group {arg}"),
            message: "expected RESOURCE_GROUP=NAMESPACE".into(),
        });
    }
    Ok((rg, ns))
}

fn split_pair(arg: &str, flag: &str, shape: &str) -> Result<(String, String), ImportError> {
    match arg.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => Err(ImportError::InvalidArgument { path: format!("{flag} {arg}"), message: format!("expected {shape}") }),
    }
}

/// The values the parameters file gives, with their paths; the names of the entries that give
/// none (reported in `errors`).
fn parameter_file_values(file: &SourceFile, errors: &mut Vec<ImportError>) -> (Vec<(String, GivenValue)>, Vec<String>) {
    let root = Path::root(&format!("({}) parameters", file.name));
    // The deployment parameters file shape, or the bare `{"NAME": {"value": ...}}` az accepts.
    let params = file.json.get("parameters").filter(|p| p.is_object()).unwrap_or(&file.json);
    let Value::Object(params) = params else {
        errors.push(ImportError::WrongType {
            path: root.to_string(),
            expected: "an object of {\"NAME\": {\"value\": ...}}".into(),
            found: "something else".into(),
        });
        return (vec![], vec![]);
    };
    let (mut out, mut refused) = (Vec::new(), Vec::new());
    for (name, p) in params {
        let at = root.field(name);
        match p.get("value") {
            Some(v) => out.push((name.clone(), GivenValue { value: v.clone(), path: at.field("value") })),
            None if p.get("reference").is_some() => {
                refused.push(name.clone());
                errors.push(ImportError::InvalidValue {
                    path: at.field("reference").to_string(),
                    message: "Key Vault references cannot be resolved by import: give the value with --set".into(),
                })
            }
            None => {
                refused.push(name.clone());
                errors
                    .push(ImportError::MissingField { path: at.field("value").to_string(), expected: "a value".into() })
            }
        }
    }
    (out, refused)
}

/// A `--set` value: JSON when the parameter is declared as an array, object, int or bool,
/// else the text as is.
fn set_value(template: &Value, name: &str, text: &str) -> Result<Value, ImportError> {
    let ty = template
        .get("parameters")
        .and_then(Value::as_object)
        .and_then(|p| p.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .and_then(|(_, d)| d.get("type"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    match ty.as_deref() {
        Some("array" | "object" | "secureobject" | "int" | "bool") => {
            serde_json::from_str(text).map_err(|e| ImportError::InvalidArgument {
                path: format!("--set {name}"),
                message: format!("the parameter takes JSON: {e}"),
            })
        }
        _ => Ok(Value::String(text.to_string())),
    }
}

/// Imports a deployment template: evaluates it with its parameters and maps what it creates
/// to our objects.
///
/// Rules (issue 17, SPEC §1, §3, §9, §11): parameter values come from `--set`, else the
/// parameters file, else the declared default; the definition's Kubernetes name is its ARM
/// resource name made DNS-1123 ([`import::kubernetes_name`]; a `guid()` stays itself), its
/// display name `registrationDefinitionName`; description, plan, every authorization
/// (principalId, principalIdDisplayName, roleDefinitionId, delegatedRoleDefinitionIds) and
/// eligible authorization (with its justInTimeAccessPolicy) carry over field for field;
/// definitions go to the subscription namespace, assignments to the namespace of their scope.
///
/// # Errors
/// [`ImportErrors`] with every [`ImportError`] found, in one pass: the parameters', the
/// template's (within one depth limit and one budget, `limits`), and the mapping's of every
/// resource that evaluated, each with its path and field. Nothing is returned partially.
pub fn import(input: &ImportInput<'_>) -> Result<Imported, ImportErrors> {
    let mut given = Vec::new();
    let mut refused = Vec::new();
    let mut errors = Vec::new();
    if let Some(file) = input.parameters {
        let (values, bad) = parameter_file_values(file, &mut errors);
        given.extend(values);
        refused.extend(bad);
    }
    for (name, text) in input.set {
        match set_value(&input.template.json, name, text) {
            Ok(value) => given.push((name.clone(), GivenValue { value, path: Path::root(&format!("--set {name}")) })),
            Err(e) => {
                refused.push(name.clone());
                errors.push(e);
            }
        }
    }
    // A refused value given twice (file, then --set) is refused only if the last one is.
    refused.retain(|name| !given.iter().any(|(g, _)| g.eq_ignore_ascii_case(name)));
    let inputs = template::Inputs {
        given,
        subscription: input.subscription_namespace,
        deployment_resource_group: input.deployment_resource_group,
        refused,
    };
    // Everything in one pass: the parameters' errors, the template's, and the mapping's of
    // whatever evaluated.
    let evaluated = template::evaluate(&input.template.json, &inputs);
    let evaluation_failed = !evaluated.errors.is_empty();
    errors.extend(evaluated.errors);
    let mut annotations = BTreeMap::from([(keys::IMPORTED_FROM.to_string(), input.template.reference())]);
    if let Some(p) = input.parameters {
        annotations.insert(keys::IMPORTED_PARAMETERS.to_string(), p.reference());
    }
    let to = import::Destination {
        subscription_namespace: input.subscription_namespace,
        resource_groups: input.resource_groups,
        resource_group_namespaces: input.resource_group_namespaces,
        catalog: input.catalog,
        annotations: &annotations,
    };
    // Out of budget, evaluation stopped part-way: nothing more is judged.
    if errors.iter().any(|e| matches!(e, ImportError::BudgetExceeded { .. })) {
        return Err(ImportErrors(errors));
    }
    match import::map(&evaluated.resources, &to) {
        Ok((definitions, assignments)) if errors.is_empty() => {
            Ok(Imported { definitions, assignments, warnings: evaluated.warnings })
        }
        Ok(_) => Err(ImportErrors(without_repeats(errors))),
        Err(more) => {
            for e in more {
                if !follows_from(&e, &errors, evaluation_failed) {
                    errors.push(e);
                }
            }
            Err(ImportErrors(without_repeats(errors)))
        }
    }
}

/// The errors without the reads of parameters and variables that have no value: each one's
/// cause is among the others.
fn without_repeats(errors: Vec<ImportError>) -> Vec<ImportError> {
    let causes = errors.iter().filter(|e| !matches!(e, ImportError::Unresolved { .. })).count();
    if causes == 0 {
        return errors;
    }
    errors.into_iter().filter(|e| !matches!(e, ImportError::Unresolved { .. })).collect()
}

/// Whether an error of the mapping only repeats, or follows from, one reported before: one at
/// or under the path of an evaluation error; a placeholder already reported where it was given
/// (the parameters file, `--set`, a default); a definition missing, or nothing to import,
/// because resources failed to evaluate.
fn follows_from(e: &ImportError, before: &[ImportError], evaluation_failed: bool) -> bool {
    // A field whose evaluation failed is null in what is mapped: what the mapping says about
    // it, or about anything under it, repeats that failure.
    let under = |p: &str, q: &str| p == q || p.strip_prefix(q).is_some_and(|rest| rest.starts_with(['.', '[', '<']));
    if before.iter().any(|b| under(e.path(), b.path())) {
        return true;
    }
    match e {
        ImportError::Placeholder { value, .. } => {
            before.iter().any(|b| matches!(b, ImportError::Placeholder { value: v, .. } if v == value))
        }
        ImportError::DefinitionNotInTemplate { .. } | ImportError::NothingToImport { .. } => evaluation_failed,
        _ => false,
    }
}
