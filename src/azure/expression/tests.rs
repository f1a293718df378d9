//! Unit tests of the expression parser and evaluator.
