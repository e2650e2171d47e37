package cluster

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/engine/work"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLink sends batches of 8 KiB from one member to another and
// reports the process's CPU time per batch, with and without a secret.
func BenchmarkLink(b *testing.B) {
	for _, tc := range []struct {
		name string
		mod  func(int, *Config)
	}{{"plain", nil}, {"secret", secured(testSecret)}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			t := &testing.T{}
			ms, gs := startCluster(t, ctx, 2, tc.mod)
			for _, m := range ms {
				m.LinksUp(ctx)
			}
			data := make([]byte, 8<<10)
			c0 := cpuNow()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ms[0].Route(ctx, work.Envelopes{Dest: ms[0].Dest("worker1"), Count: 100, Data: data})
				for ms[0].Congested() != nil {
					<-ms[0].Congested()
				}
			}
			for gs[1].count() < b.N {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuNow()-c0)/float64(b.N), "cpu-ns/batch")
		})
	}
}
