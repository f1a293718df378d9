//! Unit tests of the expression parser and evaluator.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

/// A resolver over fixed maps, for the evaluator alone.
struct Fixed {
    params: BTreeMap<String, Value>,
    vars: BTreeMap<String, Value>,
    copies: Vec<(String, i64)>,
    scope: DeploymentScope,
    meter: Meter,
}

impl Fixed {
    fn new() -> Fixed {
        Fixed {
            params: BTreeMap::from([
                ("mspOfferName".to_string(), json!("Relecloud Managed Services")),
                ("resourceGroups".to_string(), json!([{"rgName": "test"}, {"rgName": "test2"}])),
                ("count".to_string(), json!(3)),
                ("flag".to_string(), json!("Yes")),
            ]),
            vars: BTreeMap::from([("plan".to_string(), json!({"name": "gold", "Product": "p"}))]),
            copies: vec![],
            scope: DeploymentScope { subscription: "customer-a".into(), resource_group: None },
            meter: Meter::new(),
        }
    }
    fn in_loop(mut self, name: &str, i: i64) -> Fixed {
        self.copies.push((name.into(), i));
        self
    }
    fn in_resource_group(mut self, rg: &str) -> Fixed {
        self.scope.resource_group = Some(rg.into());
        self
    }
}

impl Resolver for Fixed {
    fn parameter(&self, name: &str, path: &str) -> Result<Value, ImportError> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| ImportError::UnknownParameter { path: path.into(), name: name.into() })
    }
    fn variable(&self, name: &str, path: &str) -> Result<Value, ImportError> {
        self.vars
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| ImportError::UnknownVariable { path: path.into(), name: name.into() })
    }
    fn copy_index(&self, loop_name: Option<&str>, path: &str) -> Result<i64, ImportError> {
        let found = match loop_name {
            None => self.copies.last(),
            Some(n) => self.copies.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(n)),
        };
        found.map(|(_, i)| *i).ok_or_else(|| ImportError::CopyIndexOutsideLoop {
            path: path.into(),
            loop_name: loop_name.map(Into::into),
        })
    }
    fn scope(&self) -> &DeploymentScope {
        &self.scope
    }
    fn meter(&self) -> &Meter {
        &self.meter
    }
}

const PATH: &str = "resources[0].properties.authorizations[2].roleDefinitionId";

fn eval_with(r: &Fixed, s: &str) -> Result<Value, ImportError> {
    evaluate_string(s, r, PATH)
}

fn eval(s: &str) -> Result<Value, ImportError> {
    eval_with(&Fixed::new(), s)
}

fn ok(s: &str) -> Value {
    eval(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

// --- strings, escapes ------------------------------------------------------------------------

#[test]
fn literals_and_escapes() {
    assert_eq!(ok("plain"), json!("plain"));
    assert_eq!(ok(""), json!(""));
    assert_eq!(ok("[not closed"), json!("[not closed"));
    assert_eq!(ok("closed only]"), json!("closed only]"));
    assert_eq!(ok("[[parameters('x')]"), json!("[parameters('x')]"));
    assert_eq!(ok("[[[x]"), json!("[[x]"));
    // `[[` only escapes what would otherwise be an expression.
    assert_eq!(ok("[[abc"), json!("[[abc"));
    assert_eq!(ok("['it''s']"), json!("it's"));
    assert_eq!(ok("['']"), json!(""));
    assert_eq!(ok("['[[nested]]']"), json!("[[nested]]"));
}

#[test]
fn classify_and_escape() {
    assert_eq!(classify("[f()]"), StringKind::Expression("f()"));
    assert_eq!(classify("[[f()]"), StringKind::Literal("[f()]".into()));
    assert_eq!(classify("x"), StringKind::Literal("x".into()));
    assert_eq!(escape("[f()]"), "[[f()]");
    assert_eq!(escape("x]"), "x]");
}

#[test]
fn integers_and_whitespace() {
    assert_eq!(ok("[42]"), json!(42));
    assert_eq!(ok("[-7]"), json!(-7));
    assert_eq!(ok("[ concat ( 'a' ,  'b' ) ]"), json!("ab"));
    assert_eq!(ok("[concat('a',\n'b')]"), json!("ab"));
}

// --- functions -------------------------------------------------------------------------------

#[test]
fn parameters_and_variables_case_insensitively() {
    assert_eq!(ok("[parameters('mspOfferName')]"), json!("Relecloud Managed Services"));
    assert_eq!(ok("[PARAMETERS('MSPOFFERNAME')]"), json!("Relecloud Managed Services"));
    assert_eq!(ok("[variables('plan').name]"), json!("gold"));
    assert_eq!(ok("[variables('plan').product]"), json!("p"));
    assert_eq!(ok("[variables('plan')['name']]"), json!("gold"));
}

#[test]
fn unknown_parameter_and_variable_name_the_path() {
    assert_eq!(
        eval("[parameters('nope')]"),
        Err(ImportError::UnknownParameter { path: PATH.into(), name: "nope".into() })
    );
    assert_eq!(
        eval("[variables('nope')]"),
        Err(ImportError::UnknownVariable { path: PATH.into(), name: "nope".into() })
    );
}

#[test]
fn concat_strings_numbers_and_arrays() {
    assert_eq!(ok("[concat('rgAssignment', 3)]"), json!("rgAssignment3"));
    assert_eq!(
        ok("[concat('Managed by', ' ', parameters('mspOfferName'))]"),
        json!("Managed by Relecloud Managed Services")
    );
    assert_eq!(
        ok("[concat(parameters('resourceGroups'), json('[1]'))]"),
        json!([{"rgName": "test"}, {"rgName": "test2"}, 1])
    );
    assert!(matches!(eval("[concat()]"), Err(ImportError::FunctionArguments { .. })));
    assert!(matches!(eval("[concat('a', variables('plan'))]"), Err(ImportError::FunctionArguments { .. })));
    assert!(matches!(eval("[concat(json('[]'), 'a')]"), Err(ImportError::FunctionArguments { .. })));
}

#[test]
fn guid_matches_bicep() {
    // github.com/Azure/bicep src/Bicep.Core.UnitTests/TypeSystem/FunctionResolverTests.cs
    assert_eq!(ok("[guid('foo', 'bar', 'baz')]"), json!("2ed86837-7c7c-5eaa-9864-dd077fd19b0d"));
    assert_eq!(arm_guid(&["foo", "bar", "baz"]), "2ed86837-7c7c-5eaa-9864-dd077fd19b0d");
    // The sample offers' names (templates/delegated-resource-management/*).
    assert_eq!(ok("[guid(parameters('mspOfferName'))]"), json!("a284898a-fc04-581d-aca0-047861d06160"));
    // Arguments are joined with '-', so these collide, exactly as in Azure.
    assert_eq!(arm_guid(&["a-b"]), arm_guid(&["a", "b"]));
    assert_ne!(arm_guid(&["Test"]), arm_guid(&["test"]));
}

#[test]
fn guid_wants_strings() {
    assert!(matches!(eval("[guid()]"), Err(ImportError::FunctionArguments { .. })));
    let err = eval("[guid(1)]").expect_err("an integer is not a string");
    assert_eq!(err.to_string(), format!("{PATH}: guid(): every argument must be a string, got an integer"));
}

#[test]
fn copy_index_forms() {
    let r = Fixed::new().in_loop("outer", 1).in_loop("deploymentCopy", 2);
    assert_eq!(eval_with(&r, "[copyIndex()]"), Ok(json!(2)));
    assert_eq!(eval_with(&r, "[copyIndex(10)]"), Ok(json!(12)));
    assert_eq!(eval_with(&r, "[copyIndex('outer')]"), Ok(json!(1)));
    assert_eq!(eval_with(&r, "[copyIndex('OUTER', 1)]"), Ok(json!(2)));
    assert_eq!(eval_with(&r, "[parameters('resourceGroups')[copyIndex('outer')].rgName]"), Ok(json!("test2")));
    assert_eq!(
        eval_with(&r, "[copyIndex('other')]"),
        Err(ImportError::CopyIndexOutsideLoop { path: PATH.into(), loop_name: Some("other".into()) })
    );
    assert_eq!(eval("[copyIndex()]"), Err(ImportError::CopyIndexOutsideLoop { path: PATH.into(), loop_name: None }));
    assert!(matches!(eval_with(&r, "[copyIndex(json('{}'))]"), Err(ImportError::FunctionArguments { .. })));
}

#[test]
fn length_of_arrays_strings_objects() {
    assert_eq!(ok("[length(parameters('resourceGroups'))]"), json!(2));
    assert_eq!(ok("[length('héllo')]"), json!(5));
    assert_eq!(ok("[length(variables('plan'))]"), json!(2));
    assert!(matches!(eval("[length(3)]"), Err(ImportError::FunctionArguments { .. })));
}

#[test]
fn resource_id_at_subscription_and_resource_group() {
    assert_eq!(
        ok("[resourceId('Microsoft.ManagedServices/registrationDefinitions/', 'abc')]"),
        json!("/subscriptions/customer-a/providers/Microsoft.ManagedServices/registrationDefinitions/abc")
    );
    let rg = Fixed::new().in_resource_group("web");
    assert_eq!(
        eval_with(&rg, "[resourceId('Microsoft.ManagedServices/registrationDefinitions', 'abc')]"),
        Ok(json!("/subscriptions/customer-a/resourceGroups/web/providers/Microsoft.ManagedServices/registrationDefinitions/abc"))
    );
    assert_eq!(
        ok("[resourceId('other-rg', 'Microsoft.Network/virtualNetworks/subnets', 'vnet', 'sub')]"),
        json!("/subscriptions/customer-a/resourceGroups/other-rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/sub")
    );
    assert!(matches!(eval("[resourceId('noType')]"), Err(ImportError::FunctionArguments { .. })));
    assert!(matches!(eval("[resourceId('A/b', 'x', 'y')]"), Err(ImportError::FunctionArguments { .. })));
}

#[test]
fn scope_functions() {
    assert_eq!(ok("[subscription().id]"), json!("/subscriptions/customer-a"));
    assert_eq!(ok("[subscription().subscriptionId]"), json!("customer-a"));
    assert_eq!(eval("[resourceGroup().name]"), Err(ImportError::NoResourceGroup { path: PATH.into() }));
    let rg = Fixed::new().in_resource_group("Web");
    assert_eq!(eval_with(&rg, "[resourceGroup().name]"), Ok(json!("Web")));
    assert_eq!(eval_with(&rg, "[resourceGroup().id]"), Ok(json!("/subscriptions/customer-a/resourceGroups/Web")));
    assert!(matches!(eval("[subscription(1)]"), Err(ImportError::FunctionArguments { .. })));
}

#[test]
fn if_equals_json_as_the_marketplace_sample() {
    let plan = "[if(equals(parameters('flag'), 'Yes'), variables('plan'), json('null'))]";
    assert_eq!(ok(plan), json!({"name": "gold", "Product": "p"}));
    assert_eq!(ok("[if(equals(parameters('flag'), 'No'), variables('plan'), json('null'))]"), Value::Null);
    // Only the branch taken is evaluated.
    assert_eq!(ok("[if(equals(1, 1), 'yes', parameters('missing'))]"), json!("yes"));
    assert!(matches!(eval("[if('x', 1, 2)]"), Err(ImportError::FunctionArguments { .. })));
    assert!(matches!(eval("[json('{nope')]"), Err(ImportError::FunctionArguments { .. })));
    assert_eq!(ok("[equals(json('[1,2]'), json('[1,2]'))]"), json!(true));
}

#[test]
fn access_errors() {
    assert_eq!(
        eval("[parameters('resourceGroups')[5]]"),
        Err(ImportError::Access {
            path: PATH.into(),
            message: "index 5 is out of range (the array has 2 items)".into()
        })
    );
    assert!(matches!(eval("[parameters('resourceGroups')[0].nope]"), Err(ImportError::Access { .. })));
    assert!(matches!(eval("[parameters('count').x]"), Err(ImportError::Access { .. })));
    assert!(matches!(eval("[parameters('count')[0]]"), Err(ImportError::Access { .. })));
}

// --- errors ----------------------------------------------------------------------------------

#[test]
fn unsupported_functions_are_errors_naming_the_path() {
    for (text, function) in [
        ("[reference('x')]", "reference"),
        ("[listKeys('x', '2020-01-01')]", "listKeys"),
        ("[uniqueString('a')]", "uniqueString"),
        ("[concat('a', toLower('B'))]", "toLower"),
        ("[utils.myFunction()]", "utils.myFunction"),
    ] {
        let err = eval(text).expect_err(text);
        assert_eq!(err, ImportError::UnsupportedFunction { path: PATH.into(), function: function.into() }, "{text}");
        assert!(err.to_string().starts_with(&format!("{PATH}: the function {function}() is not supported")), "{err}");
    }
}

#[test]
fn syntax_errors_name_the_path_and_offset() {
    for (text, offset) in
        [("[concat('a']", 10), ("[parameters('x']", 14), ("['open]", 5), ("[]", 0), ("[a b]", 2), ("[f(1,)]", 3)]
    {
        match eval(text) {
            Err(ImportError::Syntax { path, expression, offset: at, .. }) => {
                assert_eq!(path, PATH);
                assert_eq!(expression, text);
                assert_eq!(at, offset, "{text}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn arity_is_checked() {
    for text in
        ["[parameters()]", "[variables('a', 'b')]", "[length()]", "[if(equals(1, 1))]", "[equals(1)]", "[json()]"]
    {
        assert!(
            matches!(
                eval(text),
                Err(ImportError::FunctionArguments { .. }) | Err(ImportError::UnsupportedFunction { .. })
            ),
            "{text}"
        );
    }
}

#[test]
fn render_round_trips_the_samples_expressions() {
    for text in [
        "guid(parameters('resourceGroups')[copyIndex()].rgName)",
        "resourceId('Microsoft.ManagedServices/registrationDefinitions/', variables('mspRegistrationName'))",
        "if(equals(parameters('marketplaceOffer'), 'Yes'), variables('marketplacePlan'), json('null'))",
        "concat('it''s', -1)",
    ] {
        let parsed = parse(text, PATH).expect(text);
        assert_eq!(render(&parsed), text);
    }
}

// --- properties ------------------------------------------------------------------------------

fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Expr::String),
        any::<i64>().prop_map(Expr::Int),
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}".prop_map(|name| Expr::Call { name, args: vec![] }),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            ("[a-zA-Z_][a-zA-Z0-9_]{0,8}", prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(name, args)| Expr::Call { name, args }),
            (inner.clone(), inner.clone()).prop_map(|(t, i)| Expr::Index { target: Box::new(t), index: Box::new(i) }),
            (inner, "[a-zA-Z_][a-zA-Z0-9_]{0,8}").prop_map(|(t, name)| Expr::Property { target: Box::new(t), name }),
        ]
    })
}

proptest! {
    #[test]
    fn escape_round_trips(s in any::<String>()) {
        let escaped = escape(&s);
        prop_assert_eq!(classify(&escaped), StringKind::Literal(s.clone().into()));
        prop_assert_eq!(eval(&escaped).ok(), Some(Value::String(s)));
    }

    #[test]
    fn string_literals_round_trip(s in any::<String>()) {
        let text = format!("['{}']", s.replace('\'', "''"));
        prop_assert_eq!(eval(&text).ok(), Some(Value::String(s)));
    }

    #[test]
    fn parse_render_round_trips(e in arb_expr()) {
        let text = render(&e);
        prop_assert_eq!(parse(&text, PATH).ok(), Some(e));
    }

    #[test]
    fn guid_is_deterministic_v5_and_joins_with_hyphens(args in prop::collection::vec(any::<String>(), 1..4)) {
        let g = arm_guid(&args);
        prop_assert_eq!(&g, &arm_guid(&args));
        let parsed = uuid::Uuid::parse_str(&g).expect("a GUID");
        prop_assert_eq!(parsed.get_version_num(), 5);
        prop_assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        prop_assert_eq!(g.clone(), g.to_lowercase());
        prop_assert_eq!(g, arm_guid(&[args.join("-")]));
    }

    #[test]
    fn the_parser_never_panics(s in "\\[.{0,40}\\]") {
        let _ = eval(&s);
    }
}
