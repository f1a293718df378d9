//go:build tools

// Package tools keeps the CNI plugins the node uses, which hack/node.sh builds, in this
// module's graph: a bridge with host-local addresses, loopback, and portmap.
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/meta/portmap"
)
