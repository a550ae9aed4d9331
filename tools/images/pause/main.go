// pause: the pod sandbox's process. It holds the pod's namespaces and reaps nothing;
// it exits on SIGINT/SIGTERM. Built here so the node needs no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
