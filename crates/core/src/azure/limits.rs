//! The bounds of one import (issue 26): how deep evaluation may nest and how much work it may
//! do, for the whole template, so that a hostile template ends in an error naming its path and
//! the limit instead of a stack overflow or memory exhaustion.
//!
//! - **One depth limit**, [`MAX_DEPTH`]: every level counts against it, whatever kind it is —
//!   a JSON level of the template (an object or array, a nested deployment's
//!   `resources[i].properties.template`), a function call, index or property access of an
//!   expression, a `parameters()`/`variables()` read (the value is evaluated beneath the read),
//!   and the depth of every value an expression yields. A file nested deeper is refused when
//!   read ([`super::SourceFile::from_bytes`], [`too_deep_at`]); `serde_json`'s own recursion
//!   limit (128) stays on (no `unbounded_depth` feature) and refuses deeper files while parsing,
//!   with the same error.
//! - **One evaluation budget**, [`BUDGET`], for the whole template, nested deployments and
//!   copy loops included: every step and every value produced costs units of about a byte of
//!   memory each ([`NODE`] per JSON value or expression node, one per byte of string, one per
//!   byte of expression text read, [`RESOURCE`] per resource instance). A template that needs
//!   more (copy loops multiplied, strings or arrays doubled by nested `concat`, ...) is refused
//!   at the first path that crosses it, and evaluation stops there.

use std::cell::Cell;

use serde_json::Value;

use super::error::ImportError;

/// How deep evaluation may nest: JSON levels, expression levels and parameter or variable
/// reads together. Azure's samples need about 25; 64 keeps the evaluator (about 22 KiB of
/// stack per expression level in a debug build) within a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 64;

/// The evaluation budget of one import, in units of about a byte (32 MiB). Azure's onboarding
/// samples use about 30 KiB; a template at ARM's own ceilings (a copy loop of 800 definitions,
/// each with 20 authorizations, and their 800 assignments) about 11 MiB. Peak memory stays
/// within a few times the budget.
pub const BUDGET: u64 = 32 << 20;

/// What one JSON value or expression node costs (about the size of a `serde_json::Value`).
pub const NODE: u64 = 32;

/// What one resource instance (one iteration of a resource copy loop) costs: it bounds the
/// resources, and the errors about them, that copy loops can multiply.
pub const RESOURCE: u64 = 1024;

/// The depth and budget of one import, shared by everything it evaluates.
#[derive(Debug, Default)]
pub struct Meter {
    depth: Cell<usize>,
    used: Cell<u64>,
    exhausted: Cell<bool>,
}

/// Levels of nesting, held while they are evaluated; dropping it leaves them.
#[derive(Debug)]
#[must_use = "the levels are left when this is dropped"]
pub struct Level<'m>(&'m Meter, usize);

impl Drop for Level<'_> {
    fn drop(&mut self) {
        self.0.depth.set(self.0.depth.get().saturating_sub(self.1));
    }
}

/// How many JSON levels `v` spans (a scalar: 1) and about how many bytes it holds ([`NODE`]
/// per value, plus string and key bytes). Iterative: any value is measured safely.
pub fn measure(v: &Value) -> (usize, u64) {
    let mut stack = vec![(v, 1usize)];
    let (mut depth, mut size) = (0usize, 0u64);
    while let Some((v, d)) = stack.pop() {
        depth = depth.max(d);
        size = size.saturating_add(NODE);
        match v {
            Value::String(s) => size = size.saturating_add(s.len() as u64),
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => {
                for (k, item) in map {
                    size = size.saturating_add(k.len() as u64);
                    stack.push((item, d + 1));
                }
            }
            _ => {}
        }
    }
    (depth, size)
}

/// Where `v` nests deeper than [`MAX_DEPTH`] (a JSON path under `root`: the first level
/// beyond the limit along the deepest branch), or None.
pub fn too_deep_at(v: &Value, root: &str) -> Option<String> {
    if measure(v).0 <= MAX_DEPTH {
        return None;
    }
    let mut path = root.to_string();
    let mut at = v;
    for _ in 0..MAX_DEPTH {
        let dot = if path.is_empty() || path.ends_with(' ') { "" } else { "." };
        let next = match at {
            Value::Array(items) => {
                items.iter().enumerate().map(|(i, c)| (format!("[{i}]"), c)).max_by_key(|(_, c)| measure(c).0)
            }
            Value::Object(map) => map.iter().map(|(k, c)| (format!("{dot}{k}"), c)).max_by_key(|(_, c)| measure(c).0),
            _ => None,
        };
        let Some((segment, child)) = next else { break };
        path.push_str(&segment);
        at = child;
    }
    Some(path)
}

impl Meter {
    /// A fresh meter: depth 0, nothing used.
    pub fn new() -> Meter {
        Meter::default()
    }

    /// The current depth.
    pub fn depth(&self) -> usize {
        self.depth.get()
    }

    /// Units used so far.
    pub fn used(&self) -> u64 {
        self.used.get()
    }

    /// Whether the budget ran out: evaluation stops, nothing more is reported.
    pub fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    /// Enters one level at `path`.
    ///
    /// # Errors
    /// [`ImportError::TooDeep`] when that would exceed [`MAX_DEPTH`].
    pub fn enter(&self, path: &str) -> Result<Level<'_>, ImportError> {
        self.enter_n(1, path)
    }

    /// Enters `n` levels at once (`resources[i]`, `properties.template`).
    ///
    /// # Errors
    /// [`ImportError::TooDeep`] when that would exceed [`MAX_DEPTH`].
    pub fn enter_n(&self, n: usize, path: &str) -> Result<Level<'_>, ImportError> {
        self.fits(n, path)?;
        self.depth.set(self.depth.get() + n);
        Ok(Level(self, n))
    }

    /// Whether `n` more levels fit at the current depth.
    ///
    /// # Errors
    /// [`ImportError::TooDeep`] naming `path` and [`MAX_DEPTH`].
    pub fn fits(&self, n: usize, path: &str) -> Result<(), ImportError> {
        if self.depth.get().saturating_add(n) > MAX_DEPTH {
            return Err(ImportError::TooDeep { path: path.to_string(), limit: MAX_DEPTH });
        }
        Ok(())
    }

    /// Spends `units` of the budget at `path`.
    ///
    /// # Errors
    /// [`ImportError::BudgetExceeded`] once the budget has run out; evaluation stops there
    /// ([`Meter::exhausted`]).
    pub fn charge(&self, units: u64, path: &str) -> Result<(), ImportError> {
        let used = self.used.get().saturating_add(units);
        self.used.set(used);
        if used > BUDGET {
            self.exhausted.set(true);
            return Err(ImportError::BudgetExceeded { path: path.to_string(), limit: BUDGET });
        }
        Ok(())
    }

    /// Charges a value an expression yields at `path` (its size), and checks that it fits
    /// beneath the current level (a value read from a parameter or variable may be deep).
    ///
    /// # Errors
    /// [`ImportError::BudgetExceeded`], [`ImportError::TooDeep`].
    pub fn charge_value(&self, v: &Value, path: &str) -> Result<(), ImportError> {
        let (depth, size) = measure(v);
        self.charge(size, path)?;
        // The value's first level is the current one.
        self.fits(depth.saturating_sub(1), path)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn levels_are_left_when_dropped_and_the_limit_names_the_path() {
        let m = Meter::new();
        {
            let _a = m.enter_n(MAX_DEPTH - 1, "a").expect("fits");
            let _b = m.enter("b").expect("the last level fits");
            assert_eq!(
                m.enter("c").expect_err("one too many"),
                ImportError::TooDeep { path: "c".into(), limit: MAX_DEPTH }
            );
            assert_eq!(m.depth(), MAX_DEPTH);
        }
        assert_eq!(m.depth(), 0);
    }

    #[test]
    fn the_budget_runs_out_once_and_stays_out() {
        let m = Meter::new();
        m.charge(BUDGET, "x").expect("the whole budget may be used");
        assert!(!m.exhausted());
        assert_eq!(m.charge(1, "y"), Err(ImportError::BudgetExceeded { path: "y".into(), limit: BUDGET }));
        assert!(m.exhausted());
        assert!(m.charge(0, "z").is_err(), "nothing more once spent");
    }

    #[test]
    fn values_are_measured_by_depth_and_size() {
        assert_eq!(measure(&json!(1)), (1, NODE));
        assert_eq!(measure(&json!("abc")), (1, NODE + 3));
        assert_eq!(measure(&json!({"ab": [1, [2]]})), (4, 5 * NODE + 2));
        let m = Meter::new();
        let _deep = m.enter_n(MAX_DEPTH - 2, "p").expect("fits");
        m.charge_value(&json!([[1]]), "p").expect("3 levels from the current one: fits");
        assert!(matches!(m.charge_value(&json!([[[1]]]), "q"), Err(ImportError::TooDeep { .. })));
    }
}
