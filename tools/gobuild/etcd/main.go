// Command etcd is the etcd server, built from the published go.etcd.io/etcd/server/v3
// module: the same one-line main as the upstream repository's root main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
