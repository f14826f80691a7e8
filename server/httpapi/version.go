package httpapi

import (
	"encoding/json"
	"expvar"
	"fmt"
	"net/http"

	"github.com/cairn-kv/cairn/server"
)

// versions is the body of /version: etcd's fields, then Cairn's own.
type versions struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
	Storage string `json:"storage"`
	Cairn   string `json:"cairn"`
}

func (a *API) serveVersion(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	storage := a.m.Status().StorageVersion
	if storage == "" {
		storage = "unknown" // etcd's text before the storage version is known
	}
	b, err := json.Marshal(versions{
		Server:  server.EtcdAPIVersion,
		Cluster: server.ClusterVersion + ".0", // etcd writes it with a zero patch
		Storage: storage,
		Cairn:   server.Version,
	})
	if err != nil {
		panic(fmt.Sprintf("httpapi: marshal versions: %v", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// serveVars lists the process's expvar variables as etcd's /debug/vars
// does.
func serveVars(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	fmt.Fprint(w, "{\n")
	first := true
	expvar.Do(func(kv expvar.KeyValue) {
		if !first {
			fmt.Fprint(w, ",\n")
		}
		first = false
		fmt.Fprintf(w, "%q: %s", kv.Key, kv.Value)
	})
	fmt.Fprint(w, "\n}\n")
}
