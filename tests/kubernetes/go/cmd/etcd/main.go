// Command etcd is etcd's own server main, at the version k8s.io/kubernetes
// requires, so that the control plane and its store come from one go.sum.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
