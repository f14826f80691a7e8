package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// fillAndDelete writes n keys of 1 KiB into a new database in dir,
// compacts them into the bottom level, deletes one in five, flushes,
// closes it and returns its hash. The deleted values stay on disk: a
// single file of tombstones is not worth a compaction to Pebble.
func fillAndDelete(t *testing.T, dir string, o Options, n int) uint32 {
	t.Helper()
	e, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	// Random values: zeros would compress to nothing.
	rng := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, 1024)
	b := e.DB().NewBatch()
	for i := range n {
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		if err := b.Set(fmt.Appendf(nil, "k%06d", i), val, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := e.CompactAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = e.DB().NewBatch()
	for i := 0; i < n; i += 5 {
		if err := b.Delete(fmt.Appendf(nil, "k%06d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	h, err := e.Hash(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return h
}

// defragmentDir defragments the database in dir as cairnutl does.
func defragmentDir(dir string, o Options) (DefragStats, error) {
	e, err := OpenExisting(dir, o)
	if err != nil {
		return DefragStats{}, err
	}
	st, err := e.Defragment(context.Background())
	return st, errors.Join(err, e.Close())
}

func TestDefragmentDir(t *testing.T) {
	fs := vfs.NewMem()
	o := Options{FS: fs, DisableWAL: true, CacheSize: 1 << 20, MemTableSize: 16 << 20}
	want := fillAndDelete(t, "db", o, 2000)

	st, err := defragmentDir("db", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("in use %d -> %d bytes", st.InUseBefore, st.InUseAfter)
	if st.InUseBefore <= 0 || st.InUseAfter*10 >= st.InUseBefore*9 {
		t.Errorf("in use %d -> %d bytes: a fifth of the data was deleted, want at most 90%% left", st.InUseBefore, st.InUseAfter)
	}
	e, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got, err := e.Hash(context.Background()); err != nil || got != want {
		t.Fatalf("hash after defragmentation %x (%v), want %x", got, err, want)
	}
	if m := e.DB().Metrics(); m.Levels[0].TablesCount != 0 {
		t.Errorf("%d tables left in L0 after compacting everything", m.Levels[0].TablesCount)
	}
}

func TestDefragmentDirRefusesNoDatabase(t *testing.T) {
	fs := vfs.NewMem()
	o := Options{FS: fs}
	if _, err := defragmentDir("missing", o); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("missing dir: %v, want ErrNoDatabase", err)
	}
	if _, err := fs.Stat("missing"); err == nil {
		t.Error("missing dir was created")
	}
	if err := fs.MkdirAll("empty", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := defragmentDir("empty", o); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("empty dir: %v, want ErrNoDatabase", err)
	}
	if ls, _ := fs.List("empty"); len(ls) != 0 {
		t.Errorf("empty dir now holds %v", ls)
	}
}

func TestDefragmentDirRefusesOpenDatabase(t *testing.T) {
	fs := vfs.NewMem()
	o := Options{FS: fs}
	e, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := defragmentDir("db", o); !errors.Is(err, ErrLocked) {
		t.Errorf("open database: %v, want ErrLocked", err)
	}
}

// lockHolderEnv makes the test binary a process that opens the database
// in the directory it names, says "open" and holds it until stdin closes:
// a running member, as far as the lock goes.
const lockHolderEnv = "CAIRN_STORAGE_TEST_HOLD_DB"

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockHolderEnv); dir != "" {
		e, err := Open(dir, Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("open")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		_ = e.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestDefragmentDirRefusesDatabaseOfAnotherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	fillAndDelete(t, dir, Options{CacheSize: 1 << 20, MemTableSize: 1 << 20}, 10)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "open\n" {
		t.Fatalf("lock holder: %q, %v", line, err)
	}
	_, err = defragmentDir(dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("database open in another process: %v, want ErrLocked", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lock holder: %v", err)
	}
	if _, err := defragmentDir(dir, Options{}); err != nil {
		t.Fatalf("after the holder closed it: %v", err)
	}
}
