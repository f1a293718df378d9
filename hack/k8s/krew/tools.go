//go:build tools

// Package tools keeps krew, the kubectl plugin manager, in this module's graph: the release
// test (tests/release.rs) installs the released plugin with it, offline, as a user would.
package tools

import (
	_ "sigs.k8s.io/krew/cmd/krew"
)
