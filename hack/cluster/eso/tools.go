//go:build tools

// Package tools pins the External Secrets Operator, run by test/cluster's secrets proof with its fake
// provider (no cloud account needed); it is never compiled.
package tools

import _ "github.com/external-secrets/external-secrets"
