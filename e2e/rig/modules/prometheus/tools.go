//go:build tools

// Keeps the Prometheus server in this module's requirements; build.sh builds its main package.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
