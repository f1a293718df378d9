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
use super::limits::{Meter, NODE, RESOURCE};

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

/// ARM's limit on the iterations of one copy loop. (How deep nested deployments may go, and how
/// much copies may multiply, is bounded for the whole template by `azure::limits`.)
const MAX_COPY: i64 = 800;

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

    fn get(
        &self,
        env: &Env,
        meter: &Meter,
        warnings: &RefCell<Vec<String>>,
        name: &str,
        path: &str,
    ) -> Result<Value, ImportError> {
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
                    // Reported where it failed; one message per cause (`import` leaves this out).
                    return Err(ImportError::Unresolved {
                        path: path.to_string(),
                        what: self.what.to_string(),
                        name: name.to_string(),
                    });
                }
                Some(slot) => std::mem::replace(slot, Slot::InProgress),
            }
        };
        let Slot::Pending { raw, path: at } = taken else {
            return Err(ImportError::CircularReference { path: path.to_string(), name: name.to_string() });
        };
        // The value is evaluated beneath the read: one level deeper than where it is read.
        let result = meter.enter(path).and_then(|_level| {
            let ctx = Ctx { env, meter, warnings, copies: Vec::new(), scope: env.scope.clone() };
            evaluate_value(&raw, &ctx, &at)
        });
        self.slots.borrow_mut().insert(key, if let Ok(v) = &result { Slot::Done(v.clone()) } else { Slot::Failed });
        result
    }
}

/// One template's parameters and variables, and the scope it is deployed to.
struct Env {
    params: Table,
    vars: Table,
    scope: DeploymentScope,
}

/// What an expression sees: its template's environment, the enclosing copy loops (innermost
/// last), the scope of the resource being evaluated, and the meter of the whole import.
struct Ctx<'e> {
    env: &'e Env,
    meter: &'e Meter,
    /// Warnings of the whole import (nested templates' schemas).
    warnings: &'e RefCell<Vec<String>>,
    copies: Vec<(String, i64)>,
    scope: DeploymentScope,
}

impl Resolver for Ctx<'_> {
    fn parameter(&self, name: &str, path: &str) -> Result<Value, ImportError> {
        self.env.params.get(self.env, self.meter, self.warnings, name, path)
    }
    fn variable(&self, name: &str, path: &str) -> Result<Value, ImportError> {
        self.env.vars.get(self.env, self.meter, self.warnings, name, path)
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
    fn meter(&self) -> &Meter {
        self.meter
    }
}

impl Ctx<'_> {
    fn with_copy(&self, name: &str, i: i64) -> Ctx<'_> {
        let mut copies = self.copies.clone();
        copies.push((name.to_string(), i));
        Ctx { env: self.env, meter: self.meter, warnings: self.warnings, copies, scope: self.scope.clone() }
    }
}

/// Evaluates every expression in a JSON value, expanding property `copy` loops; the first
/// error. (Parameters and variables: one value, one error where it fails.)
fn evaluate_value(v: &Value, ctx: &Ctx<'_>, path: &Path) -> Result<Value, ImportError> {
    let mut errors = Vec::new();
    match evaluate_all(v, ctx, path, &mut errors) {
        Some(value) if errors.is_empty() => Ok(value),
        _ => Err(errors.into_iter().next().unwrap_or_else(|| missing(path, "a value"))),
    }
}

/// Evaluates every expression in a JSON value, expanding property `copy` loops, and reports
/// every field that fails into `errors`. A failed string is None; a failed part of an array or
/// object is null in place, so that the mapping still judges every other field in the same
/// pass (and leaves out what falls under a failed path). Every JSON level is a level of the
/// meter and every value costs its [`NODE`] (`azure::limits`); once the budget is spent,
/// nothing more is evaluated.
fn evaluate_all(v: &Value, ctx: &Ctx<'_>, path: &Path, errors: &mut Vec<ImportError>) -> Option<Value> {
    let report = |errors: &mut Vec<ImportError>, e| {
        errors.push(e);
        None
    };
    let _level = match ctx.meter.enter(path.as_str()) {
        Ok(level) => level,
        Err(e) => return report(errors, e),
    };
    if !v.is_string() {
        let keys = v.as_object().map_or(0, |m| m.keys().map(|k| k.len() as u64).sum());
        if let Err(e) = ctx.meter.charge(NODE + keys, path.as_str()) {
            return report(errors, e);
        }
    }
    match v {
        Value::String(s) => expression::evaluate_string(s, ctx, path.as_str()).map_err(|e| errors.push(e)).ok(),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if ctx.meter.exhausted() {
                    return None;
                }
                match evaluate_all(item, ctx, &path.index(i), errors) {
                    Some(value) => out.push(value),
                    None => {
                        // Kept in place as null, so that the mapping still judges the rest
                        // (errors under this path are left out as following from this one).
                        out.push(Value::Null);
                    }
                }
            }
            Some(Value::Array(out))
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, item) in map {
                if ctx.meter.exhausted() {
                    return None;
                }
                if k == "copy" && item.is_array() {
                    property_copies(item, ctx, &path.field(k), &mut out, errors);
                } else {
                    match evaluate_all(item, ctx, &path.field(k), errors) {
                        Some(value) => {
                            out.insert(k.clone(), value);
                        }
                        None => {
                            out.insert(k.clone(), Value::Null);
                        }
                    }
                }
            }
            Some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

/// Property iteration: `"copy": [{"name": "authorizations", "count": N, "input": {...}}]`
/// makes the property `authorizations` an array of N evaluated inputs, with
/// `copyIndex('authorizations')` the index. False when anything failed (reported).
fn property_copies(
    loops: &Value,
    ctx: &Ctx<'_>,
    path: &Path,
    out: &mut Map<String, Value>,
    errors: &mut Vec<ImportError>,
) -> bool {
    let Value::Array(loops) = loops else {
        errors.push(wrong_type(path, "an array of copy loops", loops));
        return false;
    };
    let mut ok = true;
    for (i, l) in loops.iter().enumerate() {
        let at = path.index(i);
        let Value::Object(spec) = l else {
            errors.push(wrong_type(&at, "an object {name, count, input}", l));
            ok = false;
            continue;
        };
        let name = string_field(spec, "name", ctx, &at).map_err(|e| errors.push(e)).ok();
        let count = copy_count(spec, ctx, &at).map_err(|e| errors.push(e)).ok();
        let input = spec.get("input").ok_or_else(|| missing(&at.field("input"), "the value of each item"));
        let input = input.map_err(|e| errors.push(e)).ok();
        let (Some(name), Some(count), Some(input)) = (name, count, input) else {
            ok = false;
            continue;
        };
        let mut items = Vec::new();
        for n in 0..count {
            // One failing item is reported; the others would fail alike.
            match evaluate_all(input, &ctx.with_copy(&name, n), &at.field("input"), errors) {
                Some(item) if !ctx.meter.exhausted() => items.push(item),
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        out.insert(name, Value::Array(items));
    }
    ok
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

/// What a template's `$schema` says it deploys to. Only a hint: Azure deploys a template at
/// the scope of the command (`az deployment sub create`), and import judges a wider schema by
/// what the template deploys ([`judge_wider_schema`]).
fn schema_scope(template: &Map<String, Value>, path: &Path) -> Result<SchemaScope, ImportError> {
    let at = path.field("$schema");
    let schema = match template.get("$schema") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(wrong_type(&at, "a string", other)),
        None => return Err(missing(&at, "a deployment template schema")),
    };
    let lower = schema.to_ascii_lowercase();
    if lower.contains("managementgroupdeploymenttemplate") {
        Ok(SchemaScope::Wider { scope: "management-group", schema })
    } else if lower.contains("tenantdeploymenttemplate") {
        Ok(SchemaScope::Wider { scope: "tenant", schema })
    } else if lower.contains("subscriptiondeploymenttemplate") {
        Ok(SchemaScope::Subscription)
    } else if lower.contains("deploymenttemplate") {
        Ok(SchemaScope::ResourceGroup)
    } else {
        Err(ImportError::UnsupportedSchema { path: at.to_string(), schema })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SchemaScope {
    Subscription,
    ResourceGroup,
    /// A management-group or tenant schema.
    Wider {
        /// `management-group` or `tenant`.
        scope: &'static str,
        /// The `$schema` URL as written.
        schema: String,
    },
}

/// Whether a resource `type` is one a delegation is made of: a Lighthouse resource, or a
/// deployment that holds them.
fn is_delegation_type(t: &str) -> bool {
    [DEFINITION_TYPE, ASSIGNMENT_TYPE, DEPLOYMENT_TYPE].iter().any(|d| d.eq_ignore_ascii_case(t))
}

/// The first resource of a template, nested deployments' inline templates included, that is
/// not a delegation resource: its path and `type` (an expression or a missing type counts, as
/// it could be anything). Iterative, and bounded by the template's size.
fn first_foreign_resource(template: &Map<String, Value>, path: &Path) -> Option<(Path, String)> {
    let mut stack = vec![(template, path.field("resources"))];
    while let Some((template, at)) = stack.pop() {
        let Some(Value::Array(resources)) = template.get("resources") else { continue };
        for (i, resource) in resources.iter().enumerate() {
            let rpath = at.index(i);
            let t = resource.get("type").and_then(Value::as_str);
            match t {
                Some(t) if is_delegation_type(t) && !t.starts_with('[') => {}
                other => return Some((rpath, other.unwrap_or("(none)").to_string())),
            }
            if let Some(Value::Object(inner)) = resource.get("properties").and_then(|p| p.get("template")) {
                stack.push((inner, rpath.field("properties").field("template").field("resources")));
            }
        }
    }
    None
}

/// A management-group or tenant `$schema`: Azure deploys a template at the scope of the
/// command, so what decides is what the template deploys. Only delegation resources
/// (registration definitions and assignments, which are subscription-level, and deployments
/// of them): imported as a subscription deployment, with a warning about the schema.
/// Anything else (the policy samples' `policyDefinitions`): refused, since its scope maps to
/// cluster scope, which is never delegable.
fn judge_wider_schema(
    template: &Map<String, Value>,
    path: &Path,
    scope: &str,
    schema: &str,
    warnings: &mut Vec<String>,
) -> Result<(), ImportError> {
    let at = path.field("$schema");
    match first_foreign_resource(template, path) {
        Some((resource_path, resource_type)) => Err(ImportError::NonDelegableScope {
            path: at.to_string(),
            scope: scope.to_string(),
            schema: schema.to_string(),
            resource_path: resource_path.to_string(),
            resource_type,
        }),
        None => {
            warnings.push(format!(
                "{at}: the schema says a {scope} deployment ({schema}), but every resource is a subscription-level Lighthouse resource: imported at the subscription, where Azure deploys it with az deployment sub create"
            ));
            Ok(())
        }
    }
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
    /// Parameters whose given value was refused (its error is reported already): they have no
    /// value, and no second error says so.
    pub refused: Vec<String>,
}

/// What evaluating a template gave: the delegation resources that evaluated, what the user
/// should know, and every error. The import fails when there is any error; the resources that
/// did evaluate are still mapped, so that their own errors come in the same pass.
#[derive(Debug, Default)]
pub struct Evaluated {
    /// The delegation resources that evaluated, in template order.
    pub resources: Vec<Resource>,
    /// Warnings (`PATH: message`): a `$schema` that says a wider scope than what the template
    /// deploys.
    pub warnings: Vec<String>,
    /// Every error found, with its path.
    pub errors: Vec<ImportError>,
}

/// Evaluates a template to its delegation resources.
///
/// The parameters (every error collected), then the resources (every error collected, also
/// when parameters failed: a resource that reads a parameter without a value fails, the others
/// evaluate). Stops early only where nothing else can be judged: a template that is no object,
/// a `$schema` whose scope is refused as a whole, a resource-group template without its
/// resource group. All of it within one depth limit and one budget (`azure::limits`).
pub fn evaluate(template: &Value, inputs: &Inputs<'_>) -> Evaluated {
    let mut done = Evaluated::default();
    let root = Path::default();
    let Value::Object(template) = template else {
        done.errors.push(wrong_type(&root, "a template object", template));
        return done;
    };
    let subscription = DeploymentScope { subscription: inputs.subscription.to_string(), resource_group: None };
    let scope = match schema_scope(template, &root) {
        Ok(SchemaScope::Subscription) => subscription,
        Ok(SchemaScope::Wider { scope, schema }) => {
            match judge_wider_schema(template, &root, scope, &schema, &mut done.warnings) {
                Ok(()) => subscription,
                Err(e) => {
                    done.errors.push(e);
                    return done;
                }
            }
        }
        Ok(SchemaScope::ResourceGroup) => match inputs.deployment_resource_group {
            Some(rg) => {
                DeploymentScope { subscription: inputs.subscription.to_string(), resource_group: Some(rg.to_string()) }
            }
            None => {
                done.errors.push(ImportError::ResourceGroupTemplateNeedsTarget { path: "$schema".to_string() });
                return done;
            }
        },
        // An unknown or missing schema is an error; the resources are still judged, as
        // deployed at the subscription, so that their errors come in the same pass.
        Err(e) => {
            done.errors.push(e);
            subscription
        }
    };
    let target = match &scope.resource_group {
        Some(rg) => Target::ResourceGroup { name: rg.clone(), path: Path::root("--resource-group of the deployment") },
        None => Target::Subscription,
    };
    // One depth limit and one budget for everything below, nested deployments included.
    let meter = Meter::new();
    let warnings = RefCell::new(std::mem::take(&mut done.warnings));
    let env = build_env(template, &root, &inputs.given, &inputs.refused, scope, &meter, &mut done.errors);
    if !meter.exhausted() {
        let ctx = Ctx { env: &env, meter: &meter, warnings: &warnings, copies: Vec::new(), scope: env.scope.clone() };
        walk_resources(template, &root, &ctx, &target, &mut done.resources, &mut done.errors);
    }
    done.errors = spent(std::mem::take(&mut done.errors), &meter);
    done.warnings = warnings.into_inner();
    done
}

/// Once the budget has run out, everything evaluated after fails for that one reason: only
/// the first such error is kept.
fn spent(mut errors: Vec<ImportError>, meter: &Meter) -> Vec<ImportError> {
    if meter.exhausted() {
        let mut seen = false;
        errors.retain(|e| !matches!(e, ImportError::BudgetExceeded { .. }) || !std::mem::replace(&mut seen, true));
    }
    errors
}

/// Declares the parameters (given values checked, defaults evaluated) and variables of one
/// template.
fn build_env(
    template: &Map<String, Value>,
    path: &Path,
    given: &[(String, GivenValue)],
    refused: &[String],
    scope: DeploymentScope,
    meter: &Meter,
    errors: &mut Vec<ImportError>,
) -> Env {
    let env = Env { params: Table::new("parameter"), vars: Table::new("variable"), scope };
    let params_path = path.field("parameters");
    let declared = match template.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            errors.push(wrong_type(&params_path, "an object", other));
            Map::new()
        }
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
                placeholders(&value, &path, errors);
                Slot::Done(coerce(value, decl, &at, &path, errors))
            }
            None if refused.iter().any(|r| r.eq_ignore_ascii_case(name)) => Slot::Failed,
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
        match env.params.get(&env, meter, &RefCell::new(Vec::new()), name, at.as_str()) {
            Ok(value) => {
                let default_path = at.field("defaultValue");
                placeholders(&value, &default_path, errors);
                if let Value::Object(decl) = decl {
                    let checked = coerce(value, decl, &at, &default_path, errors);
                    env.params.slots.borrow_mut().insert(name.to_ascii_lowercase(), Slot::Done(checked));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    env
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
        if ctx.meter.exhausted() {
            return;
        }
        let rpath = at.index(i);
        // `resources[i]`: two levels of the template.
        let _level = match ctx.meter.enter_n(2, rpath.as_str()) {
            Ok(level) => level,
            Err(e) => return errors.push(e),
        };
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
                            if ctx.meter.exhausted() {
                                return;
                            }
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
    // Every resource instance costs its share of the budget, whatever becomes of it: this
    // bounds the resources, and the errors about them, that copy loops can multiply.
    if let Err(e) = ctx.meter.charge(RESOURCE, path.as_str()) {
        return errors.push(e);
    }
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
    if resource_type.eq_ignore_ascii_case(DEPLOYMENT_TYPE) {
        string_field(resource, "name", ctx, path)?;
        return nested_deployment(resource, path, ctx, target, out, errors);
    }
    let kind = if resource_type.eq_ignore_ascii_case(DEFINITION_TYPE) {
        Kind::Definition
    } else if resource_type.eq_ignore_ascii_case(ASSIGNMENT_TYPE) {
        Kind::Assignment
    } else {
        return Err(ImportError::UnsupportedResourceType { path: path.field("type").to_string(), resource_type });
    };
    // From here on every field is judged, and every error reported, before giving up.
    let name = string_field(resource, "name", ctx, path).map_err(|e| errors.push(e)).ok();
    let api_version = match string_field(resource, "apiVersion", ctx, path) {
        Ok(v) if SUPPORTED_API_VERSIONS.contains(&v.as_str()) => Some(v),
        Ok(api_version) => {
            // Reported; the resource is still mapped, for the errors of its other fields.
            errors.push(ImportError::UnsupportedApiVersion {
                path: path.field("apiVersion").to_string(),
                api_version: api_version.clone(),
            });
            Some(api_version)
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let properties_path = path.field("properties");
    let properties = match resource.get("properties") {
        Some(p) => evaluate_all(p, ctx, &properties_path, errors),
        None => {
            errors.push(missing(&properties_path, "an object"));
            None
        }
    };
    let plan = match (kind, resource.get("plan")) {
        (_, None) => Some(None),
        (Kind::Definition, Some(p)) => {
            evaluate_all(p, ctx, &path.field("plan"), errors).map(|v| Some(v).filter(|v| !v.is_null()))
        }
        (Kind::Assignment, Some(_)) => {
            errors.push(ImportError::UnknownField { path: path.field("plan").to_string() });
            None
        }
    };
    // Also when a field failed (its error is reported): the mapping judges the others, and
    // leaves out what falls under a failed path. The import fails either way.
    if let (Some(name), Some(api_version), Some(properties), Some(plan)) = (name, api_version, properties, plan) {
        out.push(Resource { kind, path: path.clone(), api_version, name, properties, plan, target: target.clone() });
    }
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
    // A nested deployment goes where its `resourceGroup` (or the parent) says, whatever its
    // template's `$schema`; a wider one is judged by what the template deploys.
    if let Ok(SchemaScope::Wider { scope, schema }) = schema_scope(template, &template_path) {
        judge_wider_schema(template, &template_path, scope, &schema, &mut ctx.warnings.borrow_mut())?;
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
        // `properties.template`: two levels of the template.
        let _level = ctx.meter.enter_n(2, template_path.as_str())?;
        let nested = Ctx { copies: ctx.copies.clone(), scope: ctx.scope.clone(), ..*ctx };
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
    let _level = ctx.meter.enter_n(2, template_path.as_str())?;
    let env = build_env(template, &template_path, &given, &[], scope, ctx.meter, errors);
    let nested =
        Ctx { env: &env, meter: ctx.meter, warnings: ctx.warnings, copies: Vec::new(), scope: env.scope.clone() };
    walk_resources(template, &template_path, &nested, &target, out, errors);
    Ok(())
}
