//go:build tools

// Package tools pins the command this wrapper module builds: the kwok controller, which fakes
// nodes and the lifecycle of the pods bound to them. Nothing here is compiled.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
