//go:build tools

// Package tools pins the command this wrapper module builds: nektos/act, the local runner that
// runs the repository's own .github/workflows/*.yml in tests/e2e/workflows/. Nothing here is compiled.
package tools

import (
	_ "github.com/nektos/act"
)
