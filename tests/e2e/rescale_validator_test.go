package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// rsWindowText is the output multi_partition_detector gives for value v
// of key k with an intact state.
func rsWindowText(k string, v uint64) string {
	var vals []string
	for x := max(1, int64(v)-3); x <= int64(v); x++ {
		vals = append(vals, fmt.Sprint(x))
	}
	return fmt.Sprintf("(%s.TraceID.TraceWindow,[%s])", k, strings.Join(vals, ","))
}

// The validator itself (no cluster): it accepts a correct output even
// when a key moves between sink connections and the connections
// interleave, and it catches each kind of fault.
func TestRescaleValidator(t *testing.T) {
	final := map[string]uint64{"0000000": 10, "0000001": 10}
	good := func() []rsRecord {
		var rs []rsRecord
		// Key 0 on connection 0 up to 6, then on connection 1 (moved);
		// connection 1's first windows arrive before connection 0's last.
		for v := uint64(7); v <= 10; v++ {
			rs = append(rs, rsParse(1, []byte(rsWindowText("0000000", v))))
		}
		for v := uint64(1); v <= 6; v++ {
			rs = append(rs, rsParse(0, []byte(rsWindowText("0000000", v))))
		}
		for v := uint64(1); v <= 10; v++ {
			rs = append(rs, rsParse(0, []byte(rsWindowText("0000001", v))))
		}
		return rs
	}
	if p := rsValidate(good(), final, nil); len(p) != 0 {
		t.Fatalf("a correct output was rejected: %v", p)
	}
	cases := map[string]struct {
		change func([]rsRecord) []rsRecord
		want   string
	}{
		"lost": {func(rs []rsRecord) []rsRecord { return append(rs[:2], rs[3:]...) }, "lost"},
		"duplicated": {func(rs []rsRecord) []rsRecord {
			return append(rs, rsParse(1, []byte(rsWindowText("0000000", 9))))
		}, "duplicated"},
		"state lost on the move": {func(rs []rsRecord) []rsRecord {
			rs[0] = rsParse(1, []byte("(0000000.TraceID.TraceWindow,[7])"))
			return rs
		}, "state lost"},
		"gap inside a window": {func(rs []rsRecord) []rsRecord {
			rs[1] = rsParse(1, []byte("(0000000.TraceID.TraceWindow,[5,6,7,8])"))
			rs[1].window[1] = 9
			rs[1].window[2] = 7
			return rs
		}, "does not increase by 1"},
		"final missing": {func(rs []rsRecord) []rsRecord { return rs[:len(rs)-1] }, "final value"},
		"reordered on a connection": {func(rs []rsRecord) []rsRecord {
			rs[10], rs[11] = rs[11], rs[10]
			return rs
		}, "arrived after"},
		"unknown key": {func(rs []rsRecord) []rsRecord {
			return append(rs, rsParse(0, []byte(rsWindowText("0000009", 1))))
		}, "never sent"},
		"malformed": {func(rs []rsRecord) []rsRecord {
			return append(rs, rsParse(0, []byte("(0000000,[1])")))
		}, "not ("},
	}
	for name, tc := range cases {
		p := rsValidate(tc.change(good()), final, nil)
		if !strings.Contains(strings.Join(p, "\n"), tc.want) {
			t.Errorf("%s: problems %q, want one mentioning %q", name, p, tc.want)
		}
	}
	// A key in partial only needs its final value.
	rs := good()
	rs[0] = rsParse(1, []byte("(0000000.TraceID.TraceWindow,[7])"))
	if p := rsValidate(rs, final, map[string]bool{"0000000": true}); len(p) != 0 {
		t.Errorf("a partial key with its final value was rejected: %v", p)
	}
	if p := rsValidate(rs[:3], map[string]uint64{"0000000": 10}, map[string]bool{"0000000": true}); len(p) == 0 {
		t.Errorf("a partial key without its final value was accepted")
	}
}
