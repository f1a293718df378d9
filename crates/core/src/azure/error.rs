//! What cannot be imported, and where (issue 17, SPEC §11 `import`; docs/azure.md).
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
    Json {
        /// The file name as given.
        file: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The JSON parser's message.
        message: String,
    },

    /// An expression (`"[...]"`) does not parse.
    #[error("{path}: cannot parse the expression {expression:?} at offset {offset}: {message}")]
    Syntax {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The expression text, brackets included.
        expression: String,
        /// Byte offset where parsing stopped, counted inside the brackets.
        offset: usize,
        /// What is wrong, for a person.
        message: String,
    },

    /// A template-language function outside the supported set.
    #[error(
        "{path}: the function {function}() is not supported by import (supported: {})",
        super::expression::SUPPORTED_FUNCTIONS.join(", ")
    )]
    UnsupportedFunction {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The function name as written.
        function: String,
    },

    /// A supported function called with the wrong number or kind of arguments.
    #[error("{path}: {function}(): {message}")]
    FunctionArguments {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The function name as written.
        function: String,
        /// What is wrong, for a person.
        message: String,
    },

    /// `parameters('NAME')` of a parameter the template does not declare.
    #[error("{path}: parameters('{name}'): the template declares no such parameter")]
    UnknownParameter {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The parameter name asked for.
        name: String,
    },

    /// `variables('NAME')` of a variable the template does not declare.
    #[error("{path}: variables('{name}'): the template declares no such variable")]
    UnknownVariable {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The variable name asked for.
        name: String,
    },

    /// A parameter default or a variable that refers to itself, directly or not.
    #[error("{path}: '{name}' refers to itself")]
    CircularReference {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The parameter or variable that refers to itself.
        name: String,
    },

    /// An index or property access that does not apply (out of range, missing property, not
    /// an array or object).
    #[error("{path}: {message}")]
    Access {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// What is wrong, for a person.
        message: String,
    },

    /// `copyIndex()` outside a `copy` loop, or naming a loop that does not enclose it.
    #[error("{path}: copyIndex({}) outside of a copy loop of that name", loop_name.as_deref().map(|n| format!("'{n}'")).unwrap_or_default())]
    CopyIndexOutsideLoop {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The loop named in the call; `None` for `copyIndex()` without one.
        loop_name: Option<String>,
    },

    /// `resourceGroup()` where the deployment targets the subscription.
    #[error("{path}: resourceGroup() is used where the deployment targets a subscription")]
    NoResourceGroup {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
    },

    /// A field that must be there is missing.
    #[error("{path}: missing, expected {expected}")]
    MissingField {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// What should be there, for a person ("a string", …).
        expected: String,
    },

    /// A field of the wrong JSON kind or shape.
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The kind or shape wanted, for a person.
        expected: String,
        /// The JSON kind found.
        found: String,
    },

    /// A field import does not know: carrying it over silently could change the meaning.
    #[error("{path}: unknown field; import carries every field over or refuses")]
    UnknownField {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
    },

    /// A value outside the allowed ones.
    #[error("{path}: {message}")]
    InvalidValue {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// What is wrong, for a person.
        message: String,
    },

    /// The template's `$schema` is not a deployment template schema import knows.
    #[error(
        "{path}: unknown deployment schema {schema:?}: expected a subscription or resource-group deployment template"
    )]
    UnsupportedSchema {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The `$schema` URL as written.
        schema: String,
    },

    /// A management-group or tenant deployment: its scope would be the whole cluster.
    #[error("{path}: a {scope} deployment ({schema}) cannot be imported: it deploys {resource_type} ({resource_path}), which is no subscription-level Lighthouse resource, and its scope maps to cluster scope, which is never delegable (docs/azure.md, What is refused); delegate each subscription or resource group instead")]
    NonDelegableScope {
        /// Where: the `$schema` field.
        path: String,
        /// `management-group` or `tenant`.
        scope: String,
        /// The `$schema` URL as written.
        schema: String,
        /// The first resource that is not a delegation resource: its path in the template.
        resource_path: String,
        /// Its `type` as written.
        resource_type: String,
    },

    /// A resource-group deployment template, and the caller named no resource group to deploy it to.
    #[error("{path}: a resource-group deployment template needs the resource group it is deployed to")]
    ResourceGroupTemplateNeedsTarget {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
    },

    /// A deployment to another subscription, or with an explicit `scope`.
    #[error("{path}: {message}")]
    UnsupportedScope {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// What is wrong, for a person.
        message: String,
    },

    /// A resource import does not turn into a delegation.
    #[error("{path}: resource type {resource_type:?} is not a delegation: import only takes registrationDefinitions, registrationAssignments and the deployments that hold them")]
    UnsupportedResourceType {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The resource `type` as written.
        resource_type: String,
    },

    /// An `apiVersion` outside 2018-06-01-preview … 2022-10-01.
    #[error("{path}: apiVersion {api_version:?} of Microsoft.ManagedServices is not supported (supported: {})", super::template::SUPPORTED_API_VERSIONS.join(", "))]
    UnsupportedApiVersion {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The `apiVersion` as written.
        api_version: String,
    },

    /// A parameter without a value (none given, no default).
    #[error("{path}: parameter '{name}' has no value: give it in the parameters file or with --set {name}=VALUE")]
    MissingParameterValue {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The parameter name.
        name: String,
    },

    /// A value given for a parameter the template does not declare.
    #[error("{path}: the template declares no parameter '{name}'")]
    UndeclaredParameter {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The parameter name given.
        name: String,
    },

    /// A placeholder left for the user to fill in (`<insert managing tenant id>`).
    #[error("{path}: placeholder {value:?} left in place: replace it with the real value")]
    Placeholder {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The placeholder text as written.
        value: String,
    },

    /// A `--set` or `--resource-group` argument that is not `NAME=VALUE`.
    #[error("{path}: {message}")]
    InvalidArgument {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// What is wrong, for a person.
        message: String,
    },

    /// A tenant, principal or role ID that is not a GUID.
    #[error("{path}: {value:?} is not a GUID")]
    NotAGuid {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The value as written.
        value: String,
    },

    /// A role GUID the role catalog does not hold (custom roles are not supported, SPEC §3).
    #[error("{path}: role {role_id}{} is not in the role catalog (docs/roles.md); custom roles are not supported", azure_name.map(|n| format!(" ({n})")).unwrap_or_default())]
    RoleNotInCatalog {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The role definition GUID.
        role_id: String,
        /// Azure's name for the role when it is a well-known built-in one.
        azure_name: Option<&'static str>,
    },

    /// Owner: never delegable (SPEC §3, Azure Lighthouse's own rule).
    #[error("{path}: role {role_id} (Owner) is never delegable")]
    OwnerRole {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The role definition GUID as written.
        role_id: String,
    },

    /// A resource group with no namespace: no `--resource-group` mapping and no resource-group
    /// namespace of that name in the subscription.
    #[error("{path}: resource group {resource_group:?} has no namespace: no --resource-group {resource_group}=NAMESPACE and no resource-group namespace of that name in subscription namespace {subscription_namespace}")]
    UnknownResourceGroup {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The Azure resource group name.
        resource_group: String,
        /// The subscription namespace searched for a resource-group namespace of that name.
        subscription_namespace: String,
    },

    /// An assignment whose definition the template does not create.
    #[error("{path}: registration definition {definition_id:?} is not created by this template")]
    DefinitionNotInTemplate {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The `registrationDefinitionId` as written.
        definition_id: String,
    },

    /// Two objects of one kind with the same Kubernetes name in one namespace.
    #[error("{path}: {kind} {namespace}/{name} is produced twice")]
    DuplicateName {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// `RegistrationDefinition` or `RegistrationAssignment`.
        kind: String,
        /// The namespace both objects land in.
        namespace: String,
        /// The Kubernetes name both objects get.
        name: String,
    },

    /// An ARM resource name with nothing to make a Kubernetes name of.
    #[error("{path}: {name:?} cannot be made into a Kubernetes name")]
    InvalidName {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
        /// The ARM resource name.
        name: String,
    },

    /// Evaluation nests deeper than the one depth limit: JSON levels, expression levels and
    /// parameter or variable reads counted together (`azure::limits`).
    #[error("{path}: nested deeper than {limit} levels (JSON, expressions and the parameters and variables they read, counted together): import refuses deeper templates")]
    TooDeep {
        /// Where the limit was crossed: a template JSON path, a parameters-file path, or
        /// `FILE:LINE:COLUMN` for a file that does not parse.
        path: String,
        /// The limit, `azure::limits::MAX_DEPTH`.
        limit: usize,
    },

    /// Evaluation needs more than the one budget of the whole template (`azure::limits`):
    /// copy loops multiplied, strings or arrays doubled by nested `concat`, ...
    #[error("{path}: evaluating the template needs more than its budget of {limit} units (about bytes of values produced, copies and nested deployments included): import stops here")]
    BudgetExceeded {
        /// Where the budget ran out.
        path: String,
        /// The budget, `azure::limits::BUDGET`.
        limit: u64,
    },

    /// A parameter or variable without a value (its own error is reported where it is declared
    /// or given), read at `path`. [`super::import`] leaves these out whenever that error is
    /// there, so that one cause is reported once.
    #[error("{path}: {what} '{name}' has no value (see its error)")]
    Unresolved {
        /// Where it is read.
        path: String,
        /// `parameter` or `variable`.
        what: String,
        /// Its name.
        name: String,
    },

    /// The template delegates nothing.
    #[error("{path}: the template creates no registration definition")]
    NothingToImport {
        /// Where: a template JSON path, a parameters-file path or `--set NAME`.
        path: String,
    },
}

impl ImportError {
    /// Where: the path every variant names (a file's name for [`ImportError::Json`]).
    pub fn path(&self) -> &str {
        match self {
            ImportError::Json { file, .. } => file,
            ImportError::Syntax { path, .. }
            | ImportError::UnsupportedFunction { path, .. }
            | ImportError::FunctionArguments { path, .. }
            | ImportError::UnknownParameter { path, .. }
            | ImportError::UnknownVariable { path, .. }
            | ImportError::CircularReference { path, .. }
            | ImportError::Access { path, .. }
            | ImportError::CopyIndexOutsideLoop { path, .. }
            | ImportError::NoResourceGroup { path, .. }
            | ImportError::MissingField { path, .. }
            | ImportError::WrongType { path, .. }
            | ImportError::UnknownField { path, .. }
            | ImportError::InvalidValue { path, .. }
            | ImportError::UnsupportedSchema { path, .. }
            | ImportError::NonDelegableScope { path, .. }
            | ImportError::ResourceGroupTemplateNeedsTarget { path, .. }
            | ImportError::UnsupportedScope { path, .. }
            | ImportError::UnsupportedResourceType { path, .. }
            | ImportError::UnsupportedApiVersion { path, .. }
            | ImportError::MissingParameterValue { path, .. }
            | ImportError::UndeclaredParameter { path, .. }
            | ImportError::Placeholder { path, .. }
            | ImportError::InvalidArgument { path, .. }
            | ImportError::NotAGuid { path, .. }
            | ImportError::RoleNotInCatalog { path, .. }
            | ImportError::OwnerRole { path, .. }
            | ImportError::UnknownResourceGroup { path, .. }
            | ImportError::DefinitionNotInTemplate { path, .. }
            | ImportError::DuplicateName { path, .. }
            | ImportError::InvalidName { path, .. }
            | ImportError::TooDeep { path, .. }
            | ImportError::BudgetExceeded { path, .. }
            | ImportError::Unresolved { path, .. }
            | ImportError::NothingToImport { path, .. } => path,
        }
    }
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
