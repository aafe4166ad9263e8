//go:build tools

// Package tools pins CoreDNS, the cluster DNS (kube-dns in kube-system) of test/cluster; it is never compiled.
package tools

import _ "github.com/coredns/coredns"
