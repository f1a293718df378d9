//! What cannot be imported, and where (issue 17, SPEC §11 `import`).
//!
//! Every variant names a path: a template JSON path such as
//! `resources[0].properties.authorizations[2].roleDefinitionId` (a resource made by a `copy`
//! loop carries its index: `resources[1]<copy 2>`), `(parameters file) parameters.NAME.value`
//! for a value of the parameters file, or `--set NAME` for an override.

use std::fmt;

/// One reason why a template cannot be imported. Nothing is imported when there is any.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// A file is not JSON.
    #[error("{file}:{line}:{column}: not JSON: {message}")]
    Json { file: String, line: usize, column: usize, message: String },

    /// An expression (`"[...]"`) does not parse.
    #[error("{path}: cannot parse the expression {expression:?} at offset {offset}: {message}")]
    Syntax { path: String, expression: String, offset: usize, message: String },

    /// A template-language function outside the supported set.
    #[error(
        "{path}: the function {function}() is not supported by import (supported: {})",
        super::expression::SUPPORTED_FUNCTIONS.join(", ")
    )]
    UnsupportedFunction { path: String, function: String },

    /// A supported function called with the wrong number or kind of arguments.
    #[error("{path}: {function}(): {message}")]
    FunctionArguments { path: String, function: String, message: String },

    /// `parameters('NAME')` of a parameter the template does not declare.
    #[error("{path}: parameters('{name}'): the template declares no such parameter")]
    UnknownParameter { path: String, name: String },

    /// `variables('NAME')` of a variable the template does not declare.
    #[error("{path}: variables('{name}'): the template declares no such variable")]
    UnknownVariable { path: String, name: String },

    /// A parameter default or a variable that refers to itself, directly or not.
    #[error("{path}: '{name}' refers to itself")]
    CircularReference { path: String, name: String },

    /// An index or property access that does not apply (out of range, missing property, not
    /// an array or object).
    #[error("{path}: {message}")]
    Access { path: String, message: String },

    /// `copyIndex()` outside a `copy` loop, or naming a loop that does not enclose it.
    #[error("{path}: copyIndex({}) outside of a copy loop of that name", loop_name.as_deref().map(|n| format!("'{n}'")).unwrap_or_default())]
    CopyIndexOutsideLoop { path: String, loop_name: Option<String> },

    /// `resourceGroup()` where the deployment targets the subscription.
    #[error("{path}: resourceGroup() is used where the deployment targets a subscription")]
    NoResourceGroup { path: String },

    /// A field that must be there is missing.
    #[error("{path}: missing, expected {expected}")]
    MissingField { path: String, expected: String },

    /// A field of the wrong JSON kind or shape.
    #[error("{path}: expected {expected}, found {found}")]
    WrongType { path: String, expected: String, found: String },

    /// A field import does not know: carrying it over silently could change the meaning.
    #[error("{path}: unknown field; import carries every field over or refuses")]
    UnknownField { path: String },

    /// A value outside the allowed ones.
    #[error("{path}: {message}")]
    InvalidValue { path: String, message: String },

    /// The template's `$schema` is not a deployment template schema import knows.
    #[error(
        "{path}: unknown deployment schema {schema:?}: expected a subscription or resource-group deployment template"
    )]
    UnsupportedSchema { path: String, schema: String },

    /// A management-group or tenant deployment: its scope would be the whole cluster.
    #[error("{path}: a {scope} deployment ({schema}) cannot be imported: its scope maps to cluster scope, which is never delegable (SPEC §1); delegate each subscription or resource group instead")]
    NonDelegableScope { path: String, scope: String, schema: String },

    /// A resource-group deployment template, and the caller named no resource group to deploy it to.
    #[error("{path}: a resource-group deployment template needs the resource group it is deployed to")]
    ResourceGroupTemplateNeedsTarget { path: String },

    /// A deployment to another subscription, or with an explicit `scope`.
    #[error("{path}: {message}")]
    UnsupportedScope { path: String, message: String },

    /// A resource import does not turn into a delegation.
    #[error("{path}: resource type {resource_type:?} is not a delegation: import only takes registrationDefinitions, registrationAssignments and the deployments that hold them")]
    UnsupportedResourceType { path: String, resource_type: String },

    /// An `apiVersion` outside 2018-06-01-preview … 2022-10-01.
    #[error("{path}: apiVersion {api_version:?} of Microsoft.ManagedServices is not supported (supported: {})", super::template::SUPPORTED_API_VERSIONS.join(", "))]
    UnsupportedApiVersion { path: String, api_version: String },

    /// A parameter without a value (none given, no default).
    #[error("{path}: parameter '{name}' has no value: give it in the parameters file or with --set {name}=VALUE")]
    MissingParameterValue { path: String, name: String },

    /// A value given for a parameter the template does not declare.
    #[error("{path}: the template declares no parameter '{name}'")]
    UndeclaredParameter { path: String, name: String },

    /// A placeholder left for the user to fill in (`<insert managing tenant id>`).
    #[error("{path}: placeholder {value:?} left in place: replace it with the real value")]
    Placeholder { path: String, value: String },

    /// A `--set` or `--resource-group` argument that is not `NAME=VALUE`.
    #[error("{path}: {message}")]
    InvalidArgument { path: String, message: String },

    /// A tenant, principal or role ID that is not a GUID.
    #[error("{path}: {value:?} is not a GUID")]
    NotAGuid { path: String, value: String },

    /// A role GUID the role catalog does not hold (custom roles are not supported, SPEC §3).
    #[error("{path}: role {role_id}{} is not in the role catalog (SPEC §4); custom roles are not supported", azure_name.map(|n| format!(" ({n})")).unwrap_or_default())]
    RoleNotInCatalog { path: String, role_id: String, azure_name: Option<&'static str> },

    /// Owner: never delegable (SPEC §3, Azure Lighthouse's own rule).
    #[error("{path}: role {role_id} (Owner) is never delegable")]
    OwnerRole { path: String, role_id: String },

    /// A resource group with no namespace: no `--resource-group` mapping and no resource-group
    /// namespace of that name in the subscription.
    #[error("{path}: resource group {resource_group:?} has no namespace: no --resource-group {resource_group}=NAMESPACE and no resource-group namespace of that name in subscription namespace {subscription_namespace}")]
    UnknownResourceGroup { path: String, resource_group: String, subscription_namespace: String },

    /// An assignment whose definition the template does not create.
    #[error("{path}: registration definition {definition_id:?} is not created by this template")]
    DefinitionNotInTemplate { path: String, definition_id: String },

    /// Two objects of one kind with the same Kubernetes name in one namespace.
    #[error("{path}: {kind} {namespace}/{name} is produced twice")]
    DuplicateName { path: String, kind: String, namespace: String, name: String },

    /// An ARM resource name with nothing to make a Kubernetes name of.
    #[error("{path}: {name:?} cannot be made into a Kubernetes name")]
    InvalidName { path: String, name: String },

    /// The template delegates nothing.
    #[error("{path}: the template creates no registration definition")]
    NothingToImport { path: String },
}

/// Every reason, collected: an import either succeeds whole or fails with all of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportErrors(pub Vec<ImportError>);

impl fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "nothing imported: {n} error{}", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImportErrors {}

impl From<ImportError> for ImportErrors {
    fn from(e: ImportError) -> ImportErrors {
        ImportErrors(vec![e])
    }
}
