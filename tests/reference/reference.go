package reference

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

var (
	once     sync.Once
	etcdBin  string
	ctlBin   string
	buildErr error
)

// Binaries returns the paths of the reference etcd server and etcdctl,
// building them on first use.
func Binaries() (etcd, etcdctl string, err error) {
	once.Do(func() {
		etcdBin, ctlBin = os.Getenv("CAIRN_ETCD_BIN"), os.Getenv("CAIRN_ETCDCTL_BIN")
		if etcdBin != "" && ctlBin != "" {
			return
		}
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		out := filepath.Join(root, "bin")
		etcdBin, ctlBin = filepath.Join(out, "etcd"), filepath.Join(out, "etcdctl")
		for bin, pkg := range map[string]string{
			etcdBin: "go.etcd.io/etcd/server/v3",
			ctlBin:  "go.etcd.io/etcd/etcdctl/v3",
		} {
			cmd := exec.Command("go", "build", "-o", bin, pkg)
			cmd.Dir = filepath.Join(root, "tools")
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("building reference %s in %s: %v\n%s", pkg, cmd.Dir, err, b)
				return
			}
		}
	})
	return etcdBin, ctlBin, buildErr
}

// RepoRoot returns the root of the Cairn checkout this package lives in.
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("reference: cannot locate source file")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}
