//go:build tools

// Package tools names the upstream command this module builds.
package tools

import _ "github.com/stefanprodan/podinfo/cmd/podinfo"
