//go:build tools

// Package tools pins the command this wrapper module builds. Nothing here is compiled.
package tools

import (
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/cmd/pulumi-resource-kubernetes"
)
