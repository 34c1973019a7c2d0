//go:build tools

// Keeps krew in this module's requirements; build.sh builds its main package, with which the
// tests install kubectl serin from its krew manifest and release archive.
package tools

import _ "sigs.k8s.io/krew/cmd/krew"
