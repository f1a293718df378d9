//! Table-driven tests of SPEC §3.

use super::*;
