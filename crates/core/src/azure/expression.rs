//! The ARM template language, as far as onboarding templates use it.
//!
//! A JSON string `"[...]"` is an expression; `"[[...]"` is the escape for a literal string that
//! starts with `[` and ends with `]` (one `[` is dropped); every other string is a literal.
//! The grammar (ARM's "template expression syntax"):
//!
//! ```text
//! expression := primary postfix*
//! primary    := string | integer | call
//! call       := name '(' [expression (',' expression)*] ')'
//! postfix    := '[' expression ']' | '.' property
//! string     := "'" (any char but "'" | "''")* "'"
//! ```
//!
//! It is parsed with `winnow` and evaluated over `serde_json::Value`. Only the functions real
//! Lighthouse onboarding templates use are evaluated ([`SUPPORTED_FUNCTIONS`]); any other is
//! [`ImportError::UnsupportedFunction`] with the template path, never a guess.

use serde_json::{Map, Value};
use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{alt, cut_err, delimited, opt, preceded, repeat, separated, terminated};
use winnow::error::{ContextError, StrContext, StrContextValue};
use winnow::token::{none_of, one_of, take_while};
use winnow::{ModalResult as PResult, Parser};

use super::error::ImportError;
use super::limits::{Meter, MAX_DEPTH, NODE};

/// The functions import evaluates. Names are case-insensitive, as in ARM.
pub const SUPPORTED_FUNCTIONS: [&str; 12] = [
    "parameters",
    "variables",
    "concat",
    "guid",
    "copyIndex",
    "length",
    "resourceId",
    "resourceGroup",
    "subscription",
    "if",
    "equals",
    "json",
];

/// A parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `'text'` (with `''` for a quote).
    String(String),
    /// `42`, `-1`.
    Int(i64),
    /// `name(arg, ...)`.
    Call {
        /// The function name as written.
        name: String,
        /// The arguments, in order.
        args: Vec<Expr>,
    },
    /// `target[index]`.
    Index {
        /// The array or object indexed.
        target: Box<Expr>,
        /// The index: an integer or a property name.
        index: Box<Expr>,
    },
    /// `target.name`.
    Property {
        /// The object whose property is read.
        target: Box<Expr>,
        /// The property name.
        name: String,
    },
}

/// What a JSON string of a template is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringKind<'a> {
    /// A literal (an escaped `[[...]` already unescaped).
    Literal(std::borrow::Cow<'a, str>),
    /// The text of an expression, without its outer brackets.
    Expression(&'a str),
}

/// Classifies a JSON string: ARM treats a string that starts with `[` and ends with `]` as an
/// expression, unless it starts with `[[`, which stands for the literal without its first `[`.
pub fn classify(s: &str) -> StringKind<'_> {
    if s.starts_with('[') && s.ends_with(']') {
        if s.starts_with("[[") {
            return StringKind::Literal(std::borrow::Cow::Borrowed(&s[1..]));
        }
        return StringKind::Expression(&s[1..s.len() - 1]);
    }
    StringKind::Literal(std::borrow::Cow::Borrowed(s))
}

/// The JSON string that stands for the literal `s`: the inverse of [`classify`] on literals.
pub fn escape(s: &str) -> String {
    if s.starts_with('[') && s.ends_with(']') {
        format!("[{s}")
    } else {
        s.to_string()
    }
}

/// Azure's `guid()`: a name-based UUID (version 5, SHA-1) in the namespace
/// `11fb06fb-712d-4ddd-98c7-e71bbd588830` over the arguments joined with `-` (UTF-8),
/// lower-case and hyphenated.
///
/// Source: Microsoft's open-source Bicep evaluates `guid()` with Azure's own ARM expression
/// library; its test `src/Bicep.Core.UnitTests/TypeSystem/FunctionResolverTests.cs`
/// (github.com/Azure/bicep, commit 9beb0fee60ca53458f41492b699af440367b240b) expects
/// `guid('foo', 'bar', 'baz')` = `2ed86837-7c7c-5eaa-9864-dd077fd19b0d`, which is exactly this
/// construction (unit test `guid_matches_bicep`). Deterministic, so re-imports keep names.
pub fn arm_guid<S: AsRef<str>>(args: &[S]) -> String {
    const NAMESPACE: uuid::Uuid = uuid::uuid!("11fb06fb-712d-4ddd-98c7-e71bbd588830");
    let joined = args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join("-");
    uuid::Uuid::new_v5(&NAMESPACE, joined.as_bytes()).hyphenated().to_string()
}

// ---------------------------------------------------------------------------------------------
// Parsing

fn ws(i: &mut &str) -> PResult<()> {
    multispace0.void().parse_next(i)
}

fn string_literal(i: &mut &str) -> PResult<String> {
    let body = repeat(0.., alt(("''".value('\''), none_of('\'')))).fold(String::new, |mut s, c| {
        s.push(c);
        s
    });
    preceded('\'', cut_err(terminated(body, '\'').context(StrContext::Expected(StrContextValue::CharLiteral('\'')))))
        .parse_next(i)
}

fn integer(i: &mut &str) -> PResult<i64> {
    (opt('-'), digit1).take().try_map(str::parse::<i64>).parse_next(i)
}

fn identifier<'i>(i: &mut &'i str) -> PResult<&'i str> {
    (
        one_of(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(0.., |c: char| c.is_ascii_alphanumeric() || c == '_'),
    )
        .take()
        .parse_next(i)
}

/// A function name: an identifier, possibly namespaced (`ns.fn`, user-defined functions).
fn function_name<'i>(i: &mut &'i str) -> PResult<&'i str> {
    (identifier, repeat::<_, _, (), _, _>(0.., ('.', identifier))).take().parse_next(i)
}

fn call(i: &mut &str) -> PResult<Expr> {
    let name = function_name.parse_next(i)?;
    ws.parse_next(i)?;
    let args = delimited(
        cut_err('(').context(StrContext::Expected(StrContextValue::CharLiteral('('))),
        cut_err(delimited(ws, separated(0.., expression, (ws, ',', ws)), ws)),
        cut_err(')').context(StrContext::Expected(StrContextValue::CharLiteral(')'))),
    )
    .parse_next(i)?;
    Ok(Expr::Call { name: name.to_string(), args })
}

fn primary(i: &mut &str) -> PResult<Expr> {
    alt((
        string_literal.map(Expr::String),
        integer.map(Expr::Int),
        call,
        winnow::combinator::fail
            .context(StrContext::Label("expression"))
            .context(StrContext::Expected(StrContextValue::Description("a string, an integer or a function call"))),
    ))
    .parse_next(i)
}

enum Postfix {
    Index(Expr),
    Property(String),
}

fn postfix(i: &mut &str) -> PResult<Postfix> {
    preceded(
        ws,
        alt((
            delimited(('[', ws), cut_err(expression), cut_err((ws, ']'))).map(Postfix::Index),
            preceded(('.', ws), cut_err(identifier)).map(|s: &str| Postfix::Property(s.to_string())),
        )),
    )
    .parse_next(i)
}

/// The label of the parse error for an expression nested deeper than [`MAX_DEPTH`].
const TOO_DEEP: &str = "too deep";

fn expression(i: &mut &str) -> PResult<Expr> {
    let base = primary.parse_next(i)?;
    // A chain of accesses nests without nesting brackets (`p.a.a.a...`): its depth is counted
    // here, before the chain is built, so that no tree deeper than the limit is ever made.
    let mut depth = expr_depth(&base);
    let mut posts = Vec::new();
    while let Some(p) = opt(postfix).parse_next(i)? {
        depth = 1 + depth.max(match &p {
            Postfix::Index(index) => expr_depth(index),
            Postfix::Property(_) => 0,
        });
        if depth > MAX_DEPTH {
            return cut_err(winnow::combinator::fail.context(StrContext::Label(TOO_DEEP))).parse_next(i);
        }
        posts.push(p);
    }
    Ok(posts.into_iter().fold(base, |target, p| match p {
        Postfix::Index(index) => Expr::Index { target: Box::new(target), index: Box::new(index) },
        Postfix::Property(name) => Expr::Property { target: Box::new(target), name },
    }))
}

/// How many levels an expression tree spans (a literal: 1). Only called on trees the parser
/// has already bounded.
pub fn expr_depth(e: &Expr) -> usize {
    match e {
        Expr::String(_) | Expr::Int(_) => 1,
        Expr::Call { args, .. } => 1 + args.iter().map(expr_depth).max().unwrap_or(0),
        Expr::Index { target, index } => 1 + expr_depth(target).max(expr_depth(index)),
        Expr::Property { target, .. } => 1 + expr_depth(target),
    }
}

/// How deeply brackets nest in an expression's text, outside string literals: a bound on the
/// parser's recursion, checked before parsing.
pub fn bracket_nesting(text: &str) -> usize {
    let (mut depth, mut max, mut quoted) = (0usize, 0usize, false);
    for c in text.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' | '[' if !quoted => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses the text of an expression (without its outer brackets).
///
/// # Errors
/// [`ImportError::Syntax`] with `path`, the text and the offset where parsing stopped;
/// [`ImportError::TooDeep`] when it nests deeper than [`MAX_DEPTH`].
pub fn parse(text: &str, path: &str) -> Result<Expr, ImportError> {
    if bracket_nesting(text) > MAX_DEPTH {
        return Err(ImportError::TooDeep { path: path.to_string(), limit: MAX_DEPTH });
    }
    delimited(ws, expression, ws).parse(text).map_err(|e| {
        if e.inner().context().any(|c| matches!(c, StrContext::Label(l) if *l == TOO_DEEP)) {
            return ImportError::TooDeep { path: path.to_string(), limit: MAX_DEPTH };
        }
        ImportError::Syntax {
            path: path.to_string(),
            expression: format!("[{text}]"),
            offset: e.offset(),
            message: describe(e.inner()),
        }
    })
}

fn describe(e: &ContextError) -> String {
    let expected: Vec<String> = e
        .context()
        .filter_map(|c| match c {
            StrContext::Expected(v) => Some(v.to_string()),
            _ => None,
        })
        .collect();
    if expected.is_empty() {
        "unexpected input".to_string()
    } else {
        format!("expected {}", expected.join(" or "))
    }
}

/// Writes an expression back in the template language (for messages and round-trip tests).
pub fn render(expr: &Expr) -> String {
    match expr {
        Expr::String(s) => format!("'{}'", s.replace('\'', "''")),
        Expr::Int(n) => n.to_string(),
        Expr::Call { name, args } => format!("{name}({})", args.iter().map(render).collect::<Vec<_>>().join(", ")),
        Expr::Index { target, index } => format!("{}[{}]", render(target), render(index)),
        Expr::Property { target, name } => format!("{}.{name}", render(target)),
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// Where a deployment goes: the subscription (its namespace stands for the subscription ID)
/// and, for a resource-group deployment, the resource group's Azure name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentScope {
    /// The subscription namespace, standing for the subscription ID.
    pub subscription: String,
    /// The resource group's Azure name, for a resource-group deployment.
    pub resource_group: Option<String>,
}

impl DeploymentScope {
    /// `/subscriptions/<subscription>`, plus `/resourceGroups/<rg>` for a resource group.
    pub fn id(&self) -> String {
        match &self.resource_group {
            Some(rg) => format!("/subscriptions/{}/resourceGroups/{rg}", self.subscription),
            None => format!("/subscriptions/{}", self.subscription),
        }
    }
}

/// What an expression reads from its template: parameters, variables, the enclosing `copy`
/// loops and the deployment scope.
pub trait Resolver {
    /// The value of a parameter (names are case-insensitive).
    ///
    /// # Errors
    /// [`ImportError::UnknownParameter`], or any error of its default value.
    fn parameter(&self, name: &str, path: &str) -> Result<Value, ImportError>;
    /// The value of a variable (names are case-insensitive).
    ///
    /// # Errors
    /// [`ImportError::UnknownVariable`], or any error of its value.
    fn variable(&self, name: &str, path: &str) -> Result<Value, ImportError>;
    /// The index of the innermost `copy` loop, or of the named one.
    ///
    /// # Errors
    /// [`ImportError::CopyIndexOutsideLoop`].
    fn copy_index(&self, loop_name: Option<&str>, path: &str) -> Result<i64, ImportError>;
    /// The scope of the resource being evaluated.
    fn scope(&self) -> &DeploymentScope;
    /// The depth and budget of the whole import (`azure::limits`).
    fn meter(&self) -> &Meter;
}

/// Evaluates the JSON string `s` found at `path`: a literal as itself, an expression by
/// [`evaluate`].
///
/// # Errors
/// Any [`ImportError`] of parsing or evaluation, naming `path`.
pub fn evaluate_string(s: &str, resolver: &dyn Resolver, path: &str) -> Result<Value, ImportError> {
    let meter = resolver.meter();
    // The text is read (copied or parsed) every time it is evaluated, in every copy.
    meter.charge(NODE + s.len() as u64, path)?;
    match classify(s) {
        StringKind::Literal(text) => Ok(Value::String(text.into_owned())),
        StringKind::Expression(text) => {
            // The parser recurses once per bracket: bound it by what is left of the depth.
            meter.fits(bracket_nesting(text), path)?;
            evaluate(&parse(text, path)?, resolver, path)
        }
    }
}

/// Evaluates a parsed expression.
///
/// # Errors
/// [`ImportError::UnsupportedFunction`] for a function outside [`SUPPORTED_FUNCTIONS`],
/// [`ImportError::FunctionArguments`], [`ImportError::Access`] and the resolver's errors, all
/// naming `path`.
/// Every node is one level of [`Resolver::meter`] and costs [`NODE`]; every value a call or
/// an access yields is charged by its size and must fit in the depth that is left.
pub fn evaluate(expr: &Expr, resolver: &dyn Resolver, path: &str) -> Result<Value, ImportError> {
    let meter = resolver.meter();
    let _level = meter.enter(path)?;
    meter.charge(NODE, path)?;
    let value = match expr {
        Expr::String(s) => {
            meter.charge(s.len() as u64, path)?;
            return Ok(Value::String(s.clone()));
        }
        Expr::Int(n) => return Ok(Value::from(*n)),
        Expr::Index { target, index } => {
            let target = evaluate(target, resolver, path)?;
            let index = evaluate(index, resolver, path)?;
            access_index(&target, &index, path)?
        }
        Expr::Property { target, name } => {
            let target = evaluate(target, resolver, path)?;
            access_property(&target, name, path)?
        }
        Expr::Call { name, args } => call_function(name, args, resolver, path)?,
    };
    meter.charge_value(&value, path)?;
    Ok(value)
}

/// What kind of JSON value `v` is, for messages (`an array`).
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn access_index(target: &Value, index: &Value, path: &str) -> Result<Value, ImportError> {
    let err = |message: String| ImportError::Access { path: path.to_string(), message };
    match (target, index) {
        (Value::Array(items), Value::Number(n)) => {
            let i = n.as_i64().ok_or_else(|| err(format!("index {n} is not an integer")))?;
            usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| err(format!("index {i} is out of range (the array has {} items)", items.len())))
        }
        (Value::Object(_), Value::String(name)) => access_property(target, name, path),
        (t, i) => Err(err(format!("cannot index {} with {}", kind(t), kind(i)))),
    }
}

/// Property names are case-insensitive in ARM; an exact match wins.
pub(crate) fn lookup<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn access_property(target: &Value, name: &str, path: &str) -> Result<Value, ImportError> {
    match target {
        Value::Object(map) => lookup(map, name).cloned().ok_or_else(|| ImportError::Access {
            path: path.to_string(),
            message: format!("the object has no property '{name}'"),
        }),
        other => Err(ImportError::Access {
            path: path.to_string(),
            message: format!("cannot read '.{name}' of {}", kind(other)),
        }),
    }
}

struct Call<'a> {
    function: &'a str,
    path: &'a str,
}

impl Call<'_> {
    fn error(&self, message: impl Into<String>) -> ImportError {
        ImportError::FunctionArguments {
            path: self.path.to_string(),
            function: self.function.to_string(),
            message: message.into(),
        }
    }

    fn arity(&self, args: &[Expr], min: usize, max: usize) -> Result<(), ImportError> {
        if args.len() < min || args.len() > max {
            let want = if min == max { format!("{min}") } else { format!("{min} to {max}") };
            return Err(self.error(format!("takes {want} argument(s), got {}", args.len())));
        }
        Ok(())
    }

    fn string(&self, v: Value, what: &str) -> Result<String, ImportError> {
        match v {
            Value::String(s) => Ok(s),
            other => Err(self.error(format!("{what} must be a string, got {}", kind(&other)))),
        }
    }
}

fn call_function(name: &str, args: &[Expr], r: &dyn Resolver, path: &str) -> Result<Value, ImportError> {
    let Some(function) = SUPPORTED_FUNCTIONS.iter().find(|f| f.eq_ignore_ascii_case(name)) else {
        return Err(ImportError::UnsupportedFunction { path: path.to_string(), function: name.to_string() });
    };
    let c = Call { function, path };
    let eval = |e: &Expr| evaluate(e, r, path);
    let all = || args.iter().map(eval).collect::<Result<Vec<_>, _>>();
    match *function {
        "parameters" | "variables" => {
            c.arity(args, 1, 1)?;
            let key = c.string(eval(&args[0])?, "the name")?;
            if *function == "parameters" {
                r.parameter(&key, path)
            } else {
                r.variable(&key, path)
            }
        }
        "concat" => concat(&c, all()?),
        "guid" => {
            c.arity(args, 1, usize::MAX)?;
            let parts = all()?.into_iter().map(|v| c.string(v, "every argument")).collect::<Result<Vec<_>, _>>()?;
            Ok(Value::String(arm_guid(&parts)))
        }
        "copyIndex" => {
            c.arity(args, 0, 2)?;
            let values = all()?;
            let (loop_name, offset) = match values.as_slice() {
                [] => (None, 0),
                [Value::String(n)] => (Some(n.as_str()), 0),
                [Value::Number(o)] => (None, o.as_i64().ok_or_else(|| c.error("the offset must be an integer"))?),
                [Value::String(n), Value::Number(o)] => {
                    (Some(n.as_str()), o.as_i64().ok_or_else(|| c.error("the offset must be an integer"))?)
                }
                _ => return Err(c.error("takes an optional loop name (string) and an optional offset (integer)")),
            };
            Ok(Value::from(r.copy_index(loop_name, path)? + offset))
        }
        "length" => {
            c.arity(args, 1, 1)?;
            match eval(&args[0])? {
                Value::Array(a) => Ok(Value::from(a.len())),
                Value::String(s) => Ok(Value::from(s.chars().count())),
                Value::Object(o) => Ok(Value::from(o.len())),
                other => Err(c.error(format!("takes an array, a string or an object, got {}", kind(&other)))),
            }
        }
        "resourceId" => resource_id(&c, all()?, r.scope()),
        "resourceGroup" => {
            c.arity(args, 0, 0)?;
            let scope = r.scope();
            let Some(rg) = &scope.resource_group else {
                return Err(ImportError::NoResourceGroup { path: path.to_string() });
            };
            Ok(serde_json::json!({"id": scope.id(), "name": rg, "type": "Microsoft.Resources/resourceGroups"}))
        }
        "subscription" => {
            c.arity(args, 0, 0)?;
            let sub = &r.scope().subscription;
            Ok(serde_json::json!({"id": format!("/subscriptions/{sub}"), "subscriptionId": sub, "displayName": sub}))
        }
        "if" => {
            c.arity(args, 3, 3)?;
            match eval(&args[0])? {
                Value::Bool(true) => eval(&args[1]),
                Value::Bool(false) => eval(&args[2]),
                other => Err(c.error(format!("the condition must be a boolean, got {}", kind(&other)))),
            }
        }
        "equals" => {
            c.arity(args, 2, 2)?;
            Ok(Value::Bool(eval(&args[0])? == eval(&args[1])?))
        }
        "json" => {
            c.arity(args, 1, 1)?;
            let text = c.string(eval(&args[0])?, "the argument")?;
            serde_json::from_str(&text).map_err(|e| match super::json_error(path, &e) {
                ImportError::TooDeep { limit, .. } => ImportError::TooDeep { path: path.to_string(), limit },
                _ => c.error(format!("not JSON: {e}")),
            })
        }
        _ => Err(ImportError::UnsupportedFunction { path: path.to_string(), function: name.to_string() }),
    }
}

/// `concat`: arrays if the first argument is an array, else strings (integers and booleans
/// are written out, as ARM does for `concat('rgAssignment', copyIndex())`).
fn concat(c: &Call<'_>, values: Vec<Value>) -> Result<Value, ImportError> {
    if values.is_empty() {
        return Err(c.error("takes at least 1 argument"));
    }
    if values[0].is_array() {
        let mut out = Vec::new();
        for v in values {
            match v {
                Value::Array(items) => out.extend(items),
                other => return Err(c.error(format!("cannot concatenate an array and {}", kind(&other)))),
            }
        }
        return Ok(Value::Array(out));
    }
    let mut out = String::new();
    for v in values {
        match v {
            Value::String(s) => out.push_str(&s),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if b { "True" } else { "False" }),
            other => return Err(c.error(format!("cannot concatenate a string and {}", kind(&other)))),
        }
    }
    Ok(Value::String(out))
}

/// `resourceId([subscriptionId], [resourceGroupName], type, name, ...)`: the ID of a resource
/// in the current scope (or the one named), `.../providers/<type>/<name>[/<type2>/<name2>]`.
fn resource_id(c: &Call<'_>, values: Vec<Value>, scope: &DeploymentScope) -> Result<Value, ImportError> {
    let strings = values.into_iter().map(|v| c.string(v, "every argument")).collect::<Result<Vec<_>, _>>()?;
    let Some(type_at) = strings.iter().position(|s| s.contains('/')) else {
        return Err(c.error("needs a resource type such as 'Microsoft.ManagedServices/registrationDefinitions'"));
    };
    let (prefix, rest) = strings.split_at(type_at);
    let (subscription, resource_group) = match prefix {
        [] => (scope.subscription.clone(), scope.resource_group.clone()),
        [rg] => (scope.subscription.clone(), Some(rg.clone())),
        [sub, rg] => (sub.clone(), Some(rg.clone())),
        _ => return Err(c.error("takes at most a subscription ID and a resource group name before the type")),
    };
    let resource_type = rest[0].trim_end_matches('/');
    let names = &rest[1..];
    let type_segments: Vec<&str> = resource_type.split('/').collect();
    if names.len() + 1 != type_segments.len() {
        return Err(c.error(format!(
            "type {resource_type:?} needs {} name(s), got {}",
            type_segments.len() - 1,
            names.len()
        )));
    }
    let mut id = DeploymentScope { subscription, resource_group }.id();
    id.push_str("/providers/");
    id.push_str(type_segments[0]);
    for (segment, name) in type_segments[1..].iter().zip(names) {
        id.push('/');
        id.push_str(segment);
        id.push('/');
        id.push_str(name);
    }
    Ok(Value::String(id))
}

#[cfg(test)]
mod tests;
