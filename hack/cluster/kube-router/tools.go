//go:build tools

// Package tools pins kube-router, built for its network-policy controller only (the cluster's
// NetworkPolicy enforcer in test/cluster); it is never compiled.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
