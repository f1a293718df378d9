//! The rule classifier and its filter (`model::rules::classify`) on any RBAC rules: no panic;
//! whatever the filtered rules allow (as Kubernetes evaluates RBAC) the original rules allow
//! and the classifier accepts; the filtered rules are delegable, and filtering is idempotent.
#![no_main]

use kube_lighthouse_fuzz::{check_filter, RuleInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|rules: Vec<RuleInput>| {
    let rules: Vec<_> = rules.iter().take(16).map(RuleInput::rule).collect();
    check_filter(&rules);
});
