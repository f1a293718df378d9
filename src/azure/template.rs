//! Deployment templates: parameters, variables, resources, `copy` loops and nested deployments,
//! evaluated down to the delegation resources they create (issue 17).
//!
//! What is understood, and nothing more (samples: `Azure/Azure-Lighthouse-samples`,
//! `templates/delegated-resource-management*`, `templates/marketplace-delegated-resource-management`):
//! - `$schema`: subscription deployment templates, and resource-group deployment templates
//!   when the caller names the resource group; management-group and tenant ones are refused;
//! - `parameters` with `type`, `defaultValue` (an expression may refer to other parameters)
//!   and `allowedValues`, given by a parameters file and `--set` overrides;
//! - `variables`, evaluated when first used;
//! - resources `Microsoft.ManagedServices/registrationDefinitions` and
//!   `registrationAssignments`, and `Microsoft.Resources/deployments` whose inline `template`
//!   holds them, targeting the subscription or a `resourceGroup`, with outer (default) or
//!   inner `expressionEvaluationOptions.scope`;
//! - `condition`, resource `copy` loops (`copyIndex()` of the loop, also inside the nested
//!   template of a copied deployment) and property `copy` loops (`copy: [{name, count, input}]`);
//! - `dependsOn`, `location`, `comments`, `metadata`, `tags` are not evaluated: they do not
//!   change what is delegated.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::ImportError;
use super::expression::{self, DeploymentScope, Resolver};

/// API versions of `Microsoft.ManagedServices` import knows: every published one from
/// 2018-06-01-preview through 2022-10-01.
pub const SUPPORTED_API_VERSIONS: [&str; 7] = [
    "2018-06-01-preview",
    "2019-04-01-preview",
    "2019-06-01",
    "2019-09-01",
    "2020-02-01-preview",
    "2022-01-01-preview",
    "2022-10-01",
];

/// The first API version with `eligibleAuthorizations`.
pub const ELIGIBLE_SINCE: &str = "2020-02-01-preview";

/// ARM's limit on the iterations of one copy loop.
const MAX_COPY: i64 = 800;
/// Nested deployments deeper than this are refused (ARM allows 5 levels of linked templates).
const MAX_NESTING: usize = 8;

const DEFINITION_TYPE: &str = "Microsoft.ManagedServices/registrationDefinitions";
const ASSIGNMENT_TYPE: &str = "Microsoft.ManagedServices/registrationAssignments";
const DEPLOYMENT_TYPE: &str = "Microsoft.Resources/deployments";

/// A JSON path in a template, for messages: `resources[1]<copy 2>.properties.template`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// A path that starts with `root` (`parameters`, `(parameters file) parameters`, `--set x`).
    pub fn root(root: &str) -> Path {
        Path(root.to_string())
    }
    /// `self.key`.
    pub fn field(&self, key: &str) -> Path {
        if self.0.is_empty() {
            Path(key.to_string())
        } else {
            Path(format!("{}.{key}", self.0))
        }
    }
    /// `self[i]`.
    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }
    /// `self<copy i>`: the `i`th resource of a copy loop.
    pub fn copy(&self, i: i64) -> Path {
        Path(format!("{}<copy {i}>", self.0))
    }
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value given for a parameter, and where it came from (for messages).
#[derive(Clone, Debug, PartialEq)]
pub struct GivenValue {
    /// The value, literal (parameter values are never evaluated as expressions).
    pub value: Value,
    /// Where it was given: `(parameters.json) parameters.NAME.value` or `--set NAME`.
    pub path: Path,
}

/// Which kind of delegation resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `Microsoft.ManagedServices/registrationDefinitions` resource.
    Definition,
    /// A `Microsoft.ManagedServices/registrationAssignments` resource.
    Assignment,
}

/// Where an evaluated resource is deployed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The deployment's subscription.
    Subscription,
    /// A resource group by its Azure name; `path` is the field that named it.
    ResourceGroup {
        /// The Azure resource group name.
        name: String,
        /// The field that named it.
        path: Path,
    },
}

/// A delegation resource with every expression evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// Definition or assignment.
    pub kind: Kind,
    /// Path of the resource object in the template.
    pub path: Path,
    /// The resource's `apiVersion`, one of [`SUPPORTED_API_VERSIONS`].
    pub api_version: String,
    /// The ARM resource name.
    pub name: String,
    /// The evaluated `properties`.
    pub properties: Value,
    /// The evaluated resource-level `plan` (definitions), when not null.
    pub plan: Option<Value>,
    /// Where it is deployed.
    pub target: Target,
}

fn found(v: &Value) -> String {
    super::expression::kind(v).to_string()
}

fn wrong_type(path: &Path, expected: &str, v: &Value) -> ImportError {
    ImportError::WrongType { path: path.to_string(), expected: expected.to_string(), found: found(v) }
}

/// Whether a string is a placeholder for the user to fill in: `<insert managing tenant id>`,
/// `<your tenant>`, or anything wholly in angle brackets (the samples' parameters files).
pub fn is_placeholder(s: &str) -> bool {
    let t = s.trim();
    if t.len() > 2 && t.starts_with('<') && t.ends_with('>') {
        return true;
    }
    let lower = t.to_ascii_lowercase();
    ["<insert", "<your", "<enter", "<replace", "<provide", "<add ", "<tenant", "<principal"]
        .iter()
        .any(|p| lower.contains(p))
}

/// Every placeholder string in `value`, with its path.
fn placeholders(value: &Value, path: &Path, out: &mut Vec<ImportError>) {
    match value {
        Value::String(s) if is_placeholder(s) => {
            out.push(ImportError::Placeholder { path: path.to_string(), value: s.clone() })
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| placeholders(v, &path.index(i), out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| placeholders(v, &path.field(k), out)),
        _ => {}
    }
}

enum Slot {
    /// Not yet evaluated: a default value or a variable, an expression at `path`.
    Pending {
        raw: Value,
        path: Path,
    },
    InProgress,
    Done(Value),
    Failed,
}

/// Parameters or variables of one template, evaluated on first use, with cycle detection.
struct Table {
    what: &'static str,
    /// Lower-cased name → slot (ARM names are case-insensitive).
    slots: RefCell<BTreeMap<String, Slot>>,
}

impl Table {
    fn new(what: &'static str) -> Table {
        Table { what, slots: RefCell::new(BTreeMap::new()) }
    }

    fn get(&self, env: &Env, name: &str, path: &str) -> Result<Value, ImportError> {
        let key = name.to_ascii_lowercase();
        let taken = {
            let mut slots = self.slots.borrow_mut();
            match slots.get_mut(&key) {
                None => {
                    return Err(if self.what == "parameter" {
                        ImportError::UnknownParameter { path: path.to_string(), name: name.to_string() }
                    } else {
                        ImportError::UnknownVariable { path: path.to_string(), name: name.to_string() }
                    })
                }
                Some(Slot::Done(v)) => return Ok(v.clone()),
                Some(Slot::InProgress) => {
                    return Err(ImportError::CircularReference { path: path.to_string(), name: name.to_string() })
                }
                Some(Slot::Failed) => {
                    // Reported where it failed; one message per cause.
                    return Err(ImportError::Access {
                        path: path.to_string(),
                        message: format!("{} '{name}' has no value (see its error)", self.what),
                    });
                }
                Some(slot) => std::mem::replace(slot, Slot::InProgress),
            }
        };
        let Slot::Pending { raw, path: at } = taken else {
            return Err(ImportError::CircularReference { path: path.to_string(), name: name.to_string() });
        };
        let ctx = Ctx { env, copies: Vec::new(), scope: env.scope.clone() };
        let result = evaluate_value(&raw, &ctx, &at);
        self.slots.borrow_mut().insert(key, if let Ok(v) = &result { Slot::Done(v.clone()) } else { Slot::Failed });
        result
    }
}

/// One template's parameters and variables, and the scope it is deployed to.
struct Env {
    params: Table,
    vars: Table,
    scope: DeploymentScope,
    /// How deep this template is nested (0: the template imported).
    depth: usize,
}

/// What an expression sees: its template's environment, the enclosing copy loops (innermost
/// last) and the scope of the resource being evaluated.
struct Ctx<'e> {
    env: &'e Env,
    copies: Vec<(String, i64)>,
    scope: DeploymentScope,
}

impl Resolver for Ctx<'_> {
    fn parameter(&self, name: &str, path: &str) -> Result<Value, ImportError> {
        self.env.params.get(self.env, name, path)
    }
    fn variable(&self, name: &str, path: &str) -> Result<Value, ImportError> {
        self.env.vars.get(self.env, name, path)
    }
    fn copy_index(&self, loop_name: Option<&str>, path: &str) -> Result<i64, ImportError> {
        let found = match loop_name {
            None => self.copies.last(),
            Some(n) => self.copies.iter().rev().find(|(name, _)| name.eq_ignore_ascii_case(n)),
        };
        found.map(|(_, i)| *i).ok_or_else(|| ImportError::CopyIndexOutsideLoop {
            path: path.to_string(),
            loop_name: loop_name.map(str::to_string),
        })
    }
    fn scope(&self) -> &DeploymentScope {
        &self.scope
    }
}

impl Ctx<'_> {
    fn with_copy(&self, name: &str, i: i64) -> Ctx<'_> {
        let mut copies = self.copies.clone();
        copies.push((name.to_string(), i));
        Ctx { env: self.env, copies, scope: self.scope.clone() }
    }
}

/// Evaluates every expression in a JSON value, expanding property `copy` loops.
fn evaluate_value(v: &Value, ctx: &Ctx<'_>, path: &Path) -> Result<Value, ImportError> {
    match v {
        Value::String(s) => expression::evaluate_string(s, ctx, path.as_str()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| evaluate_value(item, ctx, &path.index(i)))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, item) in map {
                if k == "copy" && item.is_array() {
                    property_copies(item, ctx, &path.field(k), &mut out)?;
                } else {
                    out.insert(k.clone(), evaluate_value(item, ctx, &path.field(k))?);
                }
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// Property iteration: `"copy": [{"name": "authorizations", "count": N, "input": {...}}]`
/// makes the property `authorizations` an array of N evaluated inputs, with
/// `copyIndex('authorizations')` the index.
fn property_copies(loops: &Value, ctx: &Ctx<'_>, path: &Path, out: &mut Map<String, Value>) -> Result<(), ImportError> {
    let Value::Array(loops) = loops else { return Err(wrong_type(path, "an array of copy loops", loops)) };
    for (i, l) in loops.iter().enumerate() {
        let at = path.index(i);
        let Value::Object(spec) = l else { return Err(wrong_type(&at, "an object {name, count, input}", l)) };
        let name = string_field(spec, "name", ctx, &at)?;
        let count = copy_count(spec, ctx, &at)?;
        let input = spec.get("input").ok_or_else(|| missing(&at.field("input"), "the value of each item"))?;
        let items = (0..count)
            .map(|n| evaluate_value(input, &ctx.with_copy(&name, n), &at.field("input")))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(name, Value::Array(items));
    }
    Ok(())
}

fn missing(path: &Path, expected: &str) -> ImportError {
    ImportError::MissingField { path: path.to_string(), expected: expected.to_string() }
}

fn string_field(map: &Map<String, Value>, key: &str, ctx: &Ctx<'_>, path: &Path) -> Result<String, ImportError> {
    let at = path.field(key);
    match map.get(key) {
        None => Err(missing(&at, "a string")),
        Some(v) => match evaluate_value(v, ctx, &at)? {
            Value::String(s) => Ok(s),
            other => Err(wrong_type(&at, "a string", &other)),
        },
    }
}

fn copy_count(spec: &Map<String, Value>, ctx: &Ctx<'_>, path: &Path) -> Result<i64, ImportError> {
    let at = path.field("count");
    let v = spec.get("count").ok_or_else(|| missing(&at, "an integer"))?;
    match evaluate_value(v, ctx, &at)? {
        Value::Number(n) => match n.as_i64() {
            Some(c) if (0..=MAX_COPY).contains(&c) => Ok(c),
            _ => Err(ImportError::InvalidValue {
                path: at.to_string(),
                message: format!("count {n} is outside 0..={MAX_COPY}"),
            }),
        },
        other => Err(wrong_type(&at, "an integer", &other)),
    }
}

/// The scope a template's `$schema` deploys to.
fn schema_scope(template: &Map<String, Value>, path: &Path) -> Result<SchemaScope, ImportError> {
    let at = path.field("$schema");
    let schema = match template.get("$schema") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(wrong_type(&at, "a string", other)),
        None => return Err(missing(&at, "a deployment template schema")),
    };
    let lower = schema.to_ascii_lowercase();
    let refused = |scope: &str| ImportError::NonDelegableScope {
        path: at.to_string(),
        scope: scope.to_string(),
        schema: schema.clone(),
    };
    if lower.contains("managementgroupdeploymenttemplate") {
        Err(refused("management-group"))
    } else if lower.contains("tenantdeploymenttemplate") {
        Err(refused("tenant"))
    } else if lower.contains("subscriptiondeploymenttemplate") {
        Ok(SchemaScope::Subscription)
    } else if lower.contains("deploymenttemplate") {
        Ok(SchemaScope::ResourceGroup)
    } else {
        Err(ImportError::UnsupportedSchema { path: at.to_string(), schema })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SchemaScope {
    Subscription,
    ResourceGroup,
}

/// Inputs of an evaluation.
pub struct Inputs<'a> {
    /// Values by parameter name (exact name as written; matched case-insensitively), the
    /// parameters file's first and the `--set` overrides after (later wins).
    pub given: Vec<(String, GivenValue)>,
    /// The subscription namespace: stands for the subscription ID.
    pub subscription: &'a str,
    /// For a resource-group deployment template: the resource group it is deployed to.
    pub deployment_resource_group: Option<&'a str>,
}

/// Evaluates a template to its delegation resources.
///
/// First the parameters (every error collected), then the resources (every error collected).
///
/// # Errors
/// Every [`ImportError`] found, with its path; nothing is returned partially.
pub fn evaluate(template: &Value, inputs: &Inputs<'_>) -> Result<Vec<Resource>, Vec<ImportError>> {
    let root = Path::default();
    let Value::Object(template) = template else { return Err(vec![wrong_type(&root, "a template object", template)]) };
    let scope = match schema_scope(template, &root).map_err(|e| vec![e])? {
        SchemaScope::Subscription => {
            DeploymentScope { subscription: inputs.subscription.to_string(), resource_group: None }
        }
        SchemaScope::ResourceGroup => match inputs.deployment_resource_group {
            Some(rg) => {
                DeploymentScope { subscription: inputs.subscription.to_string(), resource_group: Some(rg.to_string()) }
            }
            None => return Err(vec![ImportError::ResourceGroupTemplateNeedsTarget { path: "$schema".to_string() }]),
        },
    };
    let target = match &scope.resource_group {
        Some(rg) => Target::ResourceGroup { name: rg.clone(), path: Path::root("--resource-group of the deployment") },
        None => Target::Subscription,
    };
    let env = build_env(template, &root, &inputs.given, scope, 0)?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let ctx = Ctx { env: &env, copies: Vec::new(), scope: env.scope.clone() };
    walk_resources(template, &root, &ctx, &target, &mut out, &mut errors);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Declares the parameters (given values checked, defaults evaluated) and variables of one
/// template.
fn build_env(
    template: &Map<String, Value>,
    path: &Path,
    given: &[(String, GivenValue)],
    scope: DeploymentScope,
    depth: usize,
) -> Result<Env, Vec<ImportError>> {
    let env = Env { params: Table::new("parameter"), vars: Table::new("variable"), scope, depth };
    let mut errors = Vec::new();
    let params_path = path.field("parameters");
    let declared = match template.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err(vec![wrong_type(&params_path, "an object", other)]),
    };
    let mut values: BTreeMap<String, GivenValue> = BTreeMap::new();
    for (name, value) in given {
        match declared.keys().find(|k| k.eq_ignore_ascii_case(name)) {
            Some(k) => {
                values.insert(k.to_ascii_lowercase(), value.clone());
            }
            None => errors.push(ImportError::UndeclaredParameter { path: value.path.to_string(), name: name.clone() }),
        }
    }
    for (name, decl) in &declared {
        let at = params_path.field(name);
        let Value::Object(decl) = decl else {
            errors.push(wrong_type(&at, "a parameter declaration object", decl));
            continue;
        };
        let key = name.to_ascii_lowercase();
        let slot = match values.remove(&key) {
            Some(GivenValue { value, path }) => {
                placeholders(&value, &path, &mut errors);
                Slot::Done(coerce(value, decl, &at, &path, &mut errors))
            }
            None => match decl.get("defaultValue") {
                Some(raw) => Slot::Pending { raw: raw.clone(), path: at.field("defaultValue") },
                None => {
                    errors.push(ImportError::MissingParameterValue { path: at.to_string(), name: name.clone() });
                    Slot::Failed
                }
            },
        };
        env.params.slots.borrow_mut().insert(key, slot);
    }
    let vars_path = path.field("variables");
    match template.get("variables") {
        None | Some(Value::Null) => {}
        Some(Value::Object(vars)) => {
            for (name, raw) in vars {
                if name == "copy" {
                    errors.push(ImportError::UnknownField { path: vars_path.field(name).to_string() });
                    continue;
                }
                env.vars
                    .slots
                    .borrow_mut()
                    .insert(name.to_ascii_lowercase(), Slot::Pending { raw: raw.clone(), path: vars_path.field(name) });
            }
        }
        Some(other) => errors.push(wrong_type(&vars_path, "an object", other)),
    }
    // Defaults: evaluated now, so that their placeholders, types and errors are reported
    // before any resource.
    for (name, decl) in &declared {
        let at = params_path.field(name);
        let pending = matches!(env.params.slots.borrow().get(&name.to_ascii_lowercase()), Some(Slot::Pending { .. }));
        if !pending {
            continue;
        }
        match env.params.get(&env, name, at.as_str()) {
            Ok(value) => {
                let default_path = at.field("defaultValue");
                placeholders(&value, &default_path, &mut errors);
                if let Value::Object(decl) = decl {
                    let checked = coerce(value, decl, &at, &default_path, &mut errors);
                    env.params.slots.borrow_mut().insert(name.to_ascii_lowercase(), Slot::Done(checked));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(env)
    } else {
        Err(errors)
    }
}

/// Checks a parameter value against its declared `type` and `allowedValues`.
fn coerce(
    value: Value,
    decl: &Map<String, Value>,
    decl_path: &Path,
    at: &Path,
    errors: &mut Vec<ImportError>,
) -> Value {
    let ty = decl.get("type").and_then(Value::as_str).unwrap_or("string").to_ascii_lowercase();
    let ok = match ty.as_str() {
        "string" | "securestring" => value.is_string(),
        "int" => value.is_i64(),
        "bool" => value.is_boolean(),
        "array" => value.is_array(),
        "object" | "secureobject" => value.is_object() || value.is_null(),
        _ => {
            errors.push(ImportError::InvalidValue {
                path: decl_path.field("type").to_string(),
                message: format!("unknown parameter type {ty:?}"),
            });
            return value;
        }
    };
    if !ok {
        errors.push(wrong_type(at, &format!("a value of type {ty}"), &value));
    }
    if let Some(Value::Array(allowed)) = decl.get("allowedValues") {
        if !allowed.contains(&value) {
            errors.push(ImportError::InvalidValue {
                path: at.to_string(),
                message: format!("{value} is not one of the allowedValues {}", Value::Array(allowed.clone())),
            });
        }
    }
    value
}

fn walk_resources(
    template: &Map<String, Value>,
    path: &Path,
    ctx: &Ctx<'_>,
    target: &Target,
    out: &mut Vec<Resource>,
    errors: &mut Vec<ImportError>,
) {
    let at = path.field("resources");
    let resources = match template.get("resources") {
        None | Some(Value::Null) => return,
        Some(Value::Array(r)) => r,
        Some(Value::Object(_)) => {
            errors.push(ImportError::UnknownField { path: at.to_string() });
            return;
        }
        Some(other) => {
            errors.push(wrong_type(&at, "an array of resources", other));
            return;
        }
    };
    for (i, resource) in resources.iter().enumerate() {
        let rpath = at.index(i);
        let Value::Object(resource) = resource else {
            errors.push(wrong_type(&rpath, "a resource object", resource));
            continue;
        };
        match resource.get("copy") {
            None => resource_once(resource, &rpath, ctx, target, out, errors),
            Some(Value::Object(spec)) => {
                let copy_path = rpath.field("copy");
                let name = string_field(spec, "name", ctx, &copy_path);
                let count = copy_count(spec, ctx, &copy_path);
                match (name, count) {
                    (Ok(name), Ok(count)) => {
                        for n in 0..count {
                            resource_once(resource, &rpath.copy(n), &ctx.with_copy(&name, n), target, out, errors);
                        }
                    }
                    (name, count) => errors.extend(name.err().into_iter().chain(count.err())),
                }
            }
            Some(other) => errors.push(wrong_type(&rpath.field("copy"), "an object {name, count}", other)),
        }
    }
}

fn resource_once(
    resource: &Map<String, Value>,
    path: &Path,
    ctx: &Ctx<'_>,
    target: &Target,
    out: &mut Vec<Resource>,
    errors: &mut Vec<ImportError>,
) {
    if let Err(e) = resource_inner(resource, path, ctx, target, out, errors) {
        errors.push(e);
    }
}

fn resource_inner(
    resource: &Map<String, Value>,
    path: &Path,
    ctx: &Ctx<'_>,
    target: &Target,
    out: &mut Vec<Resource>,
    errors: &mut Vec<ImportError>,
) -> Result<(), ImportError> {
    if let Some(condition) = resource.get("condition") {
        let at = path.field("condition");
        match evaluate_value(condition, ctx, &at)? {
            Value::Bool(true) => {}
            Value::Bool(false) => return Ok(()),
            other => return Err(wrong_type(&at, "a boolean", &other)),
        }
    }
    if resource.contains_key("scope") {
        return Err(ImportError::UnsupportedScope {
            path: path.field("scope").to_string(),
            message: "an explicit resource scope cannot be imported: only the subscription and its resource groups are delegable".into(),
        });
    }
    if resource.get("existing").is_some_and(|v| v == &Value::Bool(true)) {
        return Err(ImportError::UnknownField { path: path.field("existing").to_string() });
    }
    let resource_type = string_field(resource, "type", ctx, path)?;
    let name = string_field(resource, "name", ctx, path)?;
    if resource_type.eq_ignore_ascii_case(DEPLOYMENT_TYPE) {
        return nested_deployment(resource, path, ctx, target, out, errors);
    }
    let kind = if resource_type.eq_ignore_ascii_case(DEFINITION_TYPE) {
        Kind::Definition
    } else if resource_type.eq_ignore_ascii_case(ASSIGNMENT_TYPE) {
        Kind::Assignment
    } else {
        return Err(ImportError::UnsupportedResourceType { path: path.field("type").to_string(), resource_type });
    };
    let api_version = string_field(resource, "apiVersion", ctx, path)?;
    if !SUPPORTED_API_VERSIONS.contains(&api_version.as_str()) {
        return Err(ImportError::UnsupportedApiVersion { path: path.field("apiVersion").to_string(), api_version });
    }
    let properties_path = path.field("properties");
    let properties = match resource.get("properties") {
        Some(p) => evaluate_value(p, ctx, &properties_path)?,
        None => return Err(missing(&properties_path, "an object")),
    };
    let plan = match (kind, resource.get("plan")) {
        (_, None) => None,
        (Kind::Definition, Some(p)) => Some(evaluate_value(p, ctx, &path.field("plan"))?).filter(|v| !v.is_null()),
        (Kind::Assignment, Some(_)) => return Err(ImportError::UnknownField { path: path.field("plan").to_string() }),
    };
    out.push(Resource { kind, path: path.clone(), api_version, name, properties, plan, target: target.clone() });
    Ok(())
}

/// A `Microsoft.Resources/deployments` resource with an inline template.
fn nested_deployment(
    resource: &Map<String, Value>,
    path: &Path,
    ctx: &Ctx<'_>,
    target: &Target,
    out: &mut Vec<Resource>,
    errors: &mut Vec<ImportError>,
) -> Result<(), ImportError> {
    if ctx.env.depth >= MAX_NESTING {
        return Err(ImportError::UnsupportedScope {
            path: path.to_string(),
            message: format!("nested deployments deeper than {MAX_NESTING} levels"),
        });
    }
    if let Some(sub) = resource.get("subscriptionId") {
        let at = path.field("subscriptionId");
        let value = evaluate_value(sub, ctx, &at)?;
        if value.as_str() != Some(ctx.scope.subscription.as_str()) {
            return Err(ImportError::UnsupportedScope {
                path: at.to_string(),
                message: format!(
                    "a deployment to another subscription ({value}) cannot be imported into subscription namespace {}",
                    ctx.scope.subscription
                ),
            });
        }
    }
    let (scope, target) = match resource.get("resourceGroup") {
        None => (ctx.scope.clone(), target.clone()),
        Some(rg) => {
            let at = path.field("resourceGroup");
            match evaluate_value(rg, ctx, &at)? {
                Value::String(name) => (
                    DeploymentScope {
                        subscription: ctx.scope.subscription.clone(),
                        resource_group: Some(name.clone()),
                    },
                    Target::ResourceGroup { name, path: at },
                ),
                other => return Err(wrong_type(&at, "a resource group name", &other)),
            }
        }
    };
    let props_path = path.field("properties");
    let Some(Value::Object(props)) = resource.get("properties") else {
        return Err(missing(&props_path, "an object with an inline template"));
    };
    if props.contains_key("templateLink") {
        return Err(ImportError::UnknownField { path: props_path.field("templateLink").to_string() });
    }
    let template_path = props_path.field("template");
    let Some(Value::Object(template)) = props.get("template") else {
        return Err(missing(&template_path, "an inline template object"));
    };
    let inner = match props.get("expressionEvaluationOptions").and_then(|o| o.get("scope")) {
        None => false,
        Some(v) => match v.as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("inner") => true,
            Some("outer") | Some("notspecified") => false,
            _ => {
                return Err(ImportError::InvalidValue {
                    path: props_path.field("expressionEvaluationOptions").field("scope").to_string(),
                    message: format!("{v} is not inner or outer"),
                })
            }
        },
    };
    if let Some(schema) = template.get("$schema").and_then(Value::as_str) {
        let lower = schema.to_ascii_lowercase();
        if lower.contains("managementgroupdeploymenttemplate") || lower.contains("tenantdeploymenttemplate") {
            return Err(schema_scope(template, &template_path).err().unwrap_or(ImportError::UnsupportedSchema {
                path: template_path.field("$schema").to_string(),
                schema: schema.to_string(),
            }));
        }
    }
    if !inner {
        // Outer scope: the nested template's expressions are the parent's, copyIndex() included,
        // and so are resourceGroup() and subscription() (ARM resolves them to the parent
        // deployment's scope); only the target is the nested deployment's.
        for section in ["parameters", "variables"] {
            if template.get(section).and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
                return Err(ImportError::InvalidValue {
                    path: template_path.field(section).to_string(),
                    message: format!("a nested template evaluated in the outer scope cannot declare its own {section}: set expressionEvaluationOptions.scope to inner"),
                });
            }
        }
        let nested = Ctx { env: ctx.env, copies: ctx.copies.clone(), scope: ctx.scope.clone() };
        walk_resources(template, &template_path, &nested, &target, out, errors);
        return Ok(());
    }
    // Inner scope: its own parameters (given by `properties.parameters`, evaluated here) and variables.
    let mut given = Vec::new();
    let params_path = props_path.field("parameters");
    if let Some(params) = props.get("parameters") {
        let Value::Object(params) = params else { return Err(wrong_type(&params_path, "an object", params)) };
        for (name, p) in params {
            let at = params_path.field(name).field("value");
            let Some(v) = p.get("value") else { return Err(missing(&at, "a value (references are not supported)")) };
            given.push((name.clone(), GivenValue { value: evaluate_value(v, ctx, &at)?, path: at }));
        }
    }
    let env = match build_env(template, &template_path, &given, scope, ctx.env.depth + 1) {
        Ok(env) => env,
        Err(mut e) => {
            let last = e.pop();
            errors.extend(e);
            return last.map_or(Ok(()), Err);
        }
    };
    let nested = Ctx { env: &env, copies: Vec::new(), scope: env.scope.clone() };
    walk_resources(template, &template_path, &nested, &target, out, errors);
    Ok(())
}
