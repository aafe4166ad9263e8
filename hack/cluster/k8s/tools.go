//go:build tools

// Package tools pins the node commands we build (same k8s.io/kubernetes pin as
// hack/controlplane/k8s, so they share its compiled packages); it is never compiled.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
