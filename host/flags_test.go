package host

import (
	"slices"
	"strings"
	"testing"
)

func TestParseArgs_SplitsEngineOptionsFromApplicationArgs(t *testing.T) {
	argv := []string{"/bin/machida3",
		"--application-module", "word_count", "--in", "127.0.0.1:7010", "--out=127.0.0.1:7002",
		"-m", "127.0.0.1:5001", "--control=127.0.0.1:6000", "-d", "127.0.0.1:6001",
		"--name", "w", "-e", "127.0.0.1:5050", "-t", "--worker-count=1",
		"--ponythreads=1", "--ponythreads", "2", "--ponynoblock", "--ponypinasio",
		"--depth", "3", "--gen-source", "-u", "7", "--time-between-checkpoints", "5",
		"--resilience-dir=/tmp/r", "--kafka_source_topic", "t",
	}
	o, err := ParseArgs(argv)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/bin/machida3", "--in", "127.0.0.1:7010", "--out=127.0.0.1:7002",
		"--depth", "3", "--gen-source", "--kafka_source_topic", "t"}
	if !slices.Equal(o.AppArgs, want) {
		t.Errorf("AppArgs = %q\nwant      %q", o.AppArgs, want)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"module", o.Module == "word_count"},
		{"metrics", o.Metrics == "127.0.0.1:5001"},
		{"control", o.Control == "127.0.0.1:6000"},
		{"data", o.Data == "127.0.0.1:6001"},
		{"name", o.Name == "w"},
		{"external", o.External == "127.0.0.1:5050"},
		{"initializer", o.ClusterInitializer},
		{"worker count", o.WorkerCount == 1},
		{"stop pause", o.StopPause == 7},
		{"checkpoints", o.TimeBetweenCkpt == 5},
		{"resilience dir", o.ResilienceDir == "/tmp/r"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s not parsed: %+v", c.name, o)
		}
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

func TestParseArgs_Errors(t *testing.T) {
	cases := map[string][]string{
		"missing value":  {"m", "--application-module"},
		"bad int":        {"m", "--worker-count", "two"},
		"bad int inline": {"m", "--worker-count=two"},
	}
	for name, argv := range cases {
		if _, err := ParseArgs(argv); err == nil {
			t.Errorf("%s: no error for %q", name, argv)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := map[string][]string{
		"worker count zero":            {"m", "-t", "--worker-count", "0", "--data", "x"},
		"join and initializer":         {"m", "-t", "--join", "h:1"},
		"worker count on plain worker": {"m", "-w", "2"},
		"data on plain worker":         {"m", "--data", "h:1"},
		"resilience dir slash":         {"m", "-r", "/tmp/x/"},
		"log format":                   {"m", "--log-format", "xml"},
		"dos server, no my-data":       {"m", "-n", "w", "-c", "h:1", "--my-control", "h:2", "--resilience-dos-server", "h:3"},
		"name like a rotated log":      {"m", "--run-with-resilience", "-n", "w-00000000000000aB"},
		"empty secret file":            {"m", "--cluster-secret-file", ""},
		"empty secret file, =":         {"m", "--cluster-secret-file="},
		"blank tls cert":               {"m", "--tls-cert", " ", "--tls-key", "k", "--tls-ca", "c"},
	}
	for name, argv := range cases {
		o, err := ParseArgs(argv)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o.Validate() == nil {
			t.Errorf("%s: Validate accepted %q", name, argv)
		}
	}
	o, err := ParseArgs([]string{"m", "--log-format", "json", "--log-level", "WARN", "--prometheus", "127.0.0.1:9100", "app-arg"})
	if err != nil || o.Validate() != nil || o.LogFormat != "json" || o.Prometheus != "127.0.0.1:9100" {
		t.Errorf("observability options: %+v, %v", o, err)
	}
	if want := []string{"m", "--log-level", "WARN", "app-arg"}; !slices.Equal(o.AppArgs, want) {
		t.Errorf("application args = %q, want %q (--log-level is left to the application too)", o.AppArgs, want)
	}
	// A level the engine does not have is the application's own (0.6 left
	// every option it did not know to the application): no error, the
	// engine logs at info.
	for _, c := range []struct {
		argv    []string
		foreign string
	}{
		{[]string{"m", "--log-level", "none", "--depth", "2"}, "none"},
		{[]string{"m", "--log-level=critical"}, "critical"},
	} {
		o, err := ParseArgs(c.argv)
		if err != nil {
			t.Errorf("%q: %v", c.argv, err)
			continue
		}
		if err := o.Validate(); err != nil {
			t.Errorf("%q: %v", c.argv, err)
		}
		if o.LogLevel != "info" || o.ForeignLogLevel != c.foreign {
			t.Errorf("%q: engine level %q, foreign %q; want info and %q", c.argv, o.LogLevel, o.ForeignLogLevel, c.foreign)
		}
		if !slices.Equal(o.AppArgs, c.argv) {
			t.Errorf("%q: application args %q, want all of them", c.argv, o.AppArgs)
		}
	}
	for _, name := range []string{"w-00000000000000a", "w-0000000000000000a", "w_00000000000000aa", "-00000000000000aa"} {
		o, _ = ParseArgs([]string{"m", "--run-with-resilience", "-n", name})
		if err := o.Validate(); err != nil {
			t.Errorf("name %q refused: %v", name, err)
		}
	}
	for _, argv := range [][]string{
		{"m", "-t", "-d", "h:1", "--resilience-dos-server", "h:3"},
		{"m", "-n", "w", "-c", "h:1", "-x", "h:2", "-y", "h:4", "--resilience-dos-server", "h:3"},
	} {
		o, _ = ParseArgs(argv)
		if err := o.Validate(); err != nil {
			t.Errorf("%q refused: %v", argv, err)
		}
	}
	o, _ = ParseArgs([]string{"m", "--help"})
	if !o.Help {
		t.Error("--help not seen")
	}
	o, _ = ParseArgs([]string{"m", "-h"})
	if !o.Help {
		t.Error("-h not seen")
	}
}

// Workers started as members of a cluster the way Wallaroo's harness and
// book start workers 2..N (runtime spec 1.4, 7.1) are accepted and are
// cluster members; one without a name of its own, or named like the
// initializer, is refused. A one-worker initializer with a control address
// is a member too (of a cluster of one, which workers may join); a plain
// start is not.
func TestValidate_ClusterMembers(t *testing.T) {
	harnessWorker := []string{"/bin/machida3", "--application-module", "app",
		"--in", "127.0.0.1:20000", "--out", "127.0.0.1:20001", "--metrics", "127.0.0.1:20002",
		"--resilience-dir", "/tmp/res-data.x", "--name", "worker1",
		"--my-control", "127.0.0.1:20006", "--my-data", "127.0.0.1:20007", "--external", "127.0.0.1:20008",
		"--control", "127.0.0.1:20003", "--ponythreads=1", "--ponypinasio", "--ponynoblock"}
	members := map[string][]string{
		"harness worker": harnessWorker,
		"book worker 2": {"m", "--control", "127.0.0.1:6500", "--my-control", "127.0.0.1:6503",
			"--my-data", "127.0.0.1:6504", "--name", "Worker2"},
		"short and inline forms": {"m", "-n", "w2", "-c=127.0.0.1:6500"},
		"initializer of three":   {"m", "-t", "-w", "3", "-c", "127.0.0.1:6500", "-d", "127.0.0.1:6501"},
		"harness initializer of one worker": {"/bin/machida3", "--application-module", "app",
			"--in", "127.0.0.1:20000", "--out", "127.0.0.1:20001", "--metrics", "127.0.0.1:20002",
			"--resilience-dir", "/tmp/res-data.x", "--name", "initializer", "--worker-count", "1",
			"--data", "127.0.0.1:20004", "--external", "127.0.0.1:20005", "--cluster-initializer",
			"--control", "127.0.0.1:20003", "--ponythreads=1", "--ponypinasio", "--ponynoblock"},
		"book single worker": {"m", "--out", "127.0.0.1:7002", "--metrics", "127.0.0.1:5001",
			"--control", "127.0.0.1:6000", "--data", "127.0.0.1:6001", "--cluster-initializer", "--ponythreads", "1"},
		"joiner":        {"m", "--join", "127.0.0.1:6500", "--name", "w3", "--my-control", "127.0.0.1:6503", "--my-data", "127.0.0.1:6504"},
		"joiner of two": {"m", "-j", "127.0.0.1:6500", "-n", "w3", "-w", "2"},
	}
	for name, argv := range members {
		o, err := ParseArgs(argv)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("%s: Validate = %v", name, err)
		}
		if !o.inCluster() {
			t.Errorf("%s: not seen as a cluster member", name)
		}
	}
	refused := map[string]struct {
		argv []string
		want string
	}{
		"no name":                  {[]string{"m", "--control", "127.0.0.1:6500"}, "needs --name"},
		"named initializer":        {[]string{"m", "--control", "127.0.0.1:6500", "--name", "initializer"}, "that name is the cluster initializer's"},
		"joiner without a name":    {[]string{"m", "--join", "127.0.0.1:6500"}, "a joining worker needs --name"},
		"joiner named initializer": {[]string{"m", "--join", "127.0.0.1:6500", "--name", "initializer"}, "that name is the cluster initializer's"},
	}
	for name, c := range refused {
		o, err := ParseArgs(c.argv)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want %q", name, err, c.want)
		}
	}

	accepted := map[string][]string{
		"neither initializer nor control": {"m", "--in", "127.0.0.1:7010", "--out", "127.0.0.1:7002"},
		"control 0 (0.6's unset)":         {"m", "--control", "0"},
	}
	for name, argv := range accepted {
		o, err := ParseArgs(argv)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("%s: Validate = %v", name, err)
		}
		if o.inCluster() {
			t.Errorf("%s: a single worker seen as a cluster member", name)
		}
	}
}
