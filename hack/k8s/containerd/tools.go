//go:build tools

// Package tools keeps the node's container runtime, which hack/node.sh builds, in this
// module's graph: containerd 2.x, its runc shim and its client `ctr`.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
