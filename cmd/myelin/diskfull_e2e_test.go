package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// mountTmpfs mounts a tmpfs of sizeMiB under a new temporary directory
// and unmounts it when the test ends; it skips the test where mounting is
// not allowed (not root, no mount namespace). CI runs as root.
func mountTmpfs(t *testing.T, sizeMiB int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMiB), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes dir/filler until the file system is full and returns
// the file's path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return path
}

// diskNode is a myelin child process for the disk tests.
type diskNode struct {
	cmd  *exec.Cmd
	log  *logWatcher
	done chan error
	addr string
}

// startDiskNode starts myelin on dataDir without waiting for /ready (it
// may not get ready while the disk is full).
func startDiskNode(t *testing.T, dataDir string, args ...string) *diskNode {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-data.dir", dataDir, "-http.listen-address", "127.0.0.1:0",
		"-auth.multitenancy-enabled=false"}, args...)...)
	cmd.Env = append(os.Environ(), "MYELIN_TEST_RUN_MAIN=1")
	cmd.SysProcAttr = childProcAttr()
	n := &diskNode{cmd: cmd, log: newLogWatcher(), done: make(chan error, 1)}
	cmd.Stderr = n.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			t.Logf("myelin (pid %d) log:\n%s", cmd.Process.Pid, tail(n.log.String(), 80))
		}
	})
	n.addr = n.log.addr(t, n.done)
	return n
}

// stop sends SIGTERM and returns how long the node took to exit and its
// exit error; it fails the test after limit.
func (n *diskNode) stop(t *testing.T, limit time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-n.done:
		return time.Since(start), err
	case <-time.After(limit):
		n.cmd.Process.Kill()
		<-n.done
		t.Fatalf("myelin still running %v after SIGTERM", limit)
		return 0, nil
	}
}

func (n *diskNode) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + n.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// push sends one remote-write request and returns the status and body.
func (n *diskNode) push(t *testing.T, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+n.addr+"/api/v1/push", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitState polls cond every 50 ms (a child process: no clock to pass)
// until it is true, and fails after limit.
func waitState(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, limit, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// diskTestStart is the first sample time of TestDiskFull: two hours ago.
var diskTestStart = time.Now().Add(-2*time.Hour).UnixMilli() / 1000 * 1000

// randomPush is a request of series "dfull" with random values (they
// compress badly, like the load that found the bug), 10 samples each in
// second k of the test's time line.
func randomPush(t *testing.T, r *rand.Rand, series, k int) []byte {
	t.Helper()
	var req prompb.WriteRequest
	for s := range series {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "dfull"}, {Name: "s", Value: fmt.Sprint(s)}}}
		for i := range 10 {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: diskTestStart + int64(k)*1000 + int64(i)*100, Value: r.Float64()})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// countLines counts the log lines containing any of subs.
func countLines(log string, subs ...string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				n++
				break
			}
		}
	}
	return n
}

// TestDiskFull is the issue "Faults and abuse", item disk full, end to
// end on a 64 MiB tmpfs: while the disk is full writes answer 503 saying
// so, /ready says not ready and why, reads go on and the log says so a
// few times, not thousands; once space is freed the node accepts writes
// again by itself; SIGTERM on a full disk stops it promptly; a restart on
// a full disk, after SIGTERM or kill -9, starts (not ready) and recovers
// when space is freed, with every acknowledged sample; a restart under
// the free-space minimum opens its data, serves reads and refuses writes.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs and runs myelin")
	}
	mnt := mountTmpfs(t, 64)
	data := filepath.Join(mnt, "data")
	args := []string{"-storage.min-free-disk-space-bytes", fmt.Sprint(8 << 20)}
	n := startDiskNode(t, data, args...)
	waitReady(t, n.addr)
	r := rand.New(rand.NewPCG(1, 2))
	k := 0
	acked := 0
	for range 20 {
		if code, body := n.push(t, randomPush(t, r, 100, k)); code != http.StatusNoContent {
			t.Fatalf("push %d before the disk is full: %d %s", k, code, body)
		}
		k++
		acked++
	}

	filler := fillDisk(t, mnt)
	fullAt := time.Now()
	// Writes are refused within a few seconds (the guard reads the free
	// space every second; until then the current segment takes them).
	waitState(t, 10*time.Second, "a write refused for disk full", func() (bool, string) {
		code, body := n.push(t, randomPush(t, r, 100, k))
		if code == http.StatusNoContent {
			k++
			acked++
			return false, "204"
		}
		return code == http.StatusServiceUnavailable && strings.Contains(body, "disk full"), fmt.Sprintf("%d %s", code, body)
	})
	if code, body := n.get(t, "/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "disk full") {
		t.Errorf("/ready while the disk is full: %d %q, want 503 saying disk full", code, body)
	}
	want := fmt.Sprint(acked * 100 * 10)
	query := "/api/v1/query?query=sum(count_over_time(dfull%5B3h%5D))&time=" + fmt.Sprint(time.Now().Unix())
	if code, body := n.get(t, query); code != http.StatusOK || !strings.Contains(body, `"`+want+`"`) {
		t.Errorf("query while the disk is full: %d %s, want %s samples", code, body, want)
	}
	// Some seconds of a full disk: the log says so a few times.
	for time.Since(fullAt) < 6*time.Second {
		if code, _ := n.push(t, randomPush(t, r, 100, k)); code == http.StatusNoContent {
			k++
			acked++
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c := countLines(n.log.String(), "no space left on device", "disk full", "disk still full"); c > 20 {
		t.Errorf("%d log lines about the full disk in 6 s, want at most 20", c)
	}

	// Space back: writes are accepted again without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitState(t, 15*time.Second, "a write accepted after freeing space", func() (bool, string) {
		code, body := n.push(t, randomPush(t, r, 100, k))
		return code == http.StatusNoContent, fmt.Sprintf("%d %s", code, body)
	})
	k++
	acked++
	waitState(t, 10*time.Second, "/ready after freeing space", func() (bool, string) {
		code, body := n.get(t, "/ready")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})

	// SIGTERM on a full disk stops the node within the shutdown's limit.
	filler = fillDisk(t, mnt)
	took, err := n.stop(t, 60*time.Second)
	t.Logf("stopped on a full disk in %v (exit: %v)", took.Round(time.Millisecond), err)
	if took > 45*time.Second {
		t.Errorf("stop on a full disk took %v, want within the shutdown limit", took)
	}

	// A restart on a full disk starts, refuses writes, is not ready, and
	// recovers once space is freed, with every acknowledged sample.
	n = startDiskNode(t, data, args...)
	waitState(t, 20*time.Second, "/ready saying disk full after a restart on a full disk", func() (bool, string) {
		code, body := n.get(t, "/ready")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "disk full"), fmt.Sprintf("%d %s", code, body)
	})
	if code, body := n.push(t, randomPush(t, r, 100, k)); code != http.StatusServiceUnavailable || !strings.Contains(body, "disk full") {
		t.Errorf("write after a restart on a full disk: %d %s, want 503 disk full", code, body)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitState(t, 20*time.Second, "ready after freeing space", func() (bool, string) {
		code, body := n.get(t, "/ready")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	waitState(t, 10*time.Second, "a write accepted", func() (bool, string) {
		code, body := n.push(t, randomPush(t, r, 100, k))
		return code == http.StatusNoContent, fmt.Sprintf("%d %s", code, body)
	})
	k++
	acked++
	want = fmt.Sprint(acked * 100 * 10)
	if code, body := n.get(t, query); code != http.StatusOK || !strings.Contains(body, `"`+want+`"`) {
		t.Errorf("query after the restart: %d %s, want %s samples (every acknowledged one)", code, body, want)
	}

	// kill -9 while the disk is full and writes are refused, and a
	// restart on the still full disk: it waits for space, then replays.
	filler = fillDisk(t, mnt)
	waitState(t, 10*time.Second, "a write refused for disk full before the kill", func() (bool, string) {
		code, body := n.push(t, randomPush(t, r, 100, k))
		if code == http.StatusNoContent {
			k++
			acked++
			return false, "204"
		}
		return code == http.StatusServiceUnavailable && strings.Contains(body, "disk full"), fmt.Sprintf("%d %s", code, body)
	})
	n.cmd.Process.Kill()
	<-n.done
	n = startDiskNode(t, data, args...)
	waitState(t, 20*time.Second, "/ready saying disk full after kill -9 and a restart on a full disk", func() (bool, string) {
		code, body := n.get(t, "/ready")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "disk full"), fmt.Sprintf("%d %s", code, body)
	})
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitState(t, 20*time.Second, "ready after freeing space", func() (bool, string) {
		code, body := n.get(t, "/ready")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	want = fmt.Sprint(acked * 100 * 10)
	if code, body := n.get(t, query); code != http.StatusOK || !strings.Contains(body, `"`+want+`"`) {
		t.Errorf("query after kill -9 on a full disk: %d %s, want %s samples (every acknowledged one)", code, body, want)
	}
	if took, err := n.stop(t, 60*time.Second); err != nil {
		t.Errorf("stop after recovery: %v after %v", err, took)
	}

	// A restart under the free-space minimum but with room to open the
	// storage: the node opens and replays, is not ready and refuses
	// writes, saying which setting refuses them.
	free := statfsFree(t, mnt)
	low := append([]string{}, args...)
	low[1] = fmt.Sprint(free + 32<<20)
	n = startDiskNode(t, data, low...)
	waitState(t, 20*time.Second, "/ready saying the minimum refuses writes", func() (bool, string) {
		code, body := n.get(t, "/ready")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "-storage.min-free-disk-space-bytes"), fmt.Sprintf("%d %s", code, body)
	})
	if code, body := n.push(t, randomPush(t, r, 100, k)); code != http.StatusServiceUnavailable || !strings.Contains(body, "under the minimum") {
		t.Errorf("write under the minimum: %d %s, want 503 naming the minimum", code, body)
	}
	if code, body := n.get(t, query); code != http.StatusOK || !strings.Contains(body, `"`+want+`"`) {
		t.Errorf("query under the minimum: %d %s, want %s samples", code, body, want)
	}
	if took, err := n.stop(t, 60*time.Second); err != nil {
		t.Errorf("stop under the minimum: %v after %v", err, took)
	}
}

// statfsFree returns the bytes available to an unprivileged user in
// dir's file system.
func statfsFree(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize)
}
