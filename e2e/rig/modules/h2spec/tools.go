//go:build tools

// Keeps h2spec in this module's requirements; build.sh builds its command, which the tests run
// against meshproxy's h2c and TLS listeners (HTTP/2 conformance, RFC 7540/9113 and HPACK).
package tools

import _ "github.com/summerwind/h2spec/cmd/h2spec"
