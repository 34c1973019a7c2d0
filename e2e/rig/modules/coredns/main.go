// The rig's cluster DNS: CoreDNS built with only the plugins a cluster's Corefile uses for
// cluster.local (there is no upstream to forward to: the rig has no route out). CoreDNS documents
// this way of choosing plugins at compile time: set the directive order and import each plugin.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order is CoreDNS's own (plugin.cfg), which decides the order a query passes through them.
var directives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
