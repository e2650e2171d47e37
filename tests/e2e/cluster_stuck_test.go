package e2e

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net"
	"strings"
	"testing"
	"time"
)

// keyOwnedBy returns a key whose partition a 2-worker cluster gives to
// worker index w (the first table spreads 256 partitions in two
// contiguous halves, engine/routing).
func keyOwnedBy(w int) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("k%d", i)
		if p := crc32.ChecksumIEEE([]byte(k)) % 256; int(p)/128 == w {
			return k
		}
	}
}

// A worker that stays connected but is stuck in user code is detected by
// heartbeats and reported in the log and the cluster status.
func TestCluster_StuckWorkerIsReported(t *testing.T) {
	dir := testdataDir()
	s := newSink(t)
	in := freePort(t)
	ws := startCluster(t, dir, "stuck_keyed", 2, in, s.addr())
	c, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ok, stuck := keyOwnedBy(0), keyOwnedBy(1)
	send(t, c, ok+" hello")
	s.waitLines(t, 1, 30*time.Second)
	send(t, c, stuck+" spin")
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := execOutput(bin("external_sender"), "--external", ws[0].external, "--type", "cluster-status-query", "--json")
		var st struct {
			Unresponsive []string `json:"unresponsive_workers"`
		}
		if err == nil && json.Unmarshal([]byte(strings.TrimSpace(out)), &st) == nil && len(st.Unresponsive) > 0 {
			if !strings.HasPrefix(st.Unresponsive[0], "worker1: in user code for") {
				t.Errorf("unresponsive_workers = %v", st.Unresponsive)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stuck worker was never reported; last status %q (%v)", out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ws[0].waitOutput("worker unresponsive worker=worker1", 30*time.Second)
	// Keys owned by the healthy worker still flow.
	send(t, c, ok+" again")
	s.waitLines(t, 2, 30*time.Second)
}
