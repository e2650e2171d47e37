package host

import (
	"strings"
	"testing"
)

func TestParseArgs_SecurityOptionsAreEngineOptions(t *testing.T) {
	o, err := ParseArgs([]string{"machida3", "--cluster-secret-file", "/s", "--tls-cert=/c", "--tls-key", "/k", "--tls-ca", "/a", "--app-arg"})
	if err != nil {
		t.Fatal(err)
	}
	if o.ClusterSecretFile != "/s" || o.TLSCert != "/c" || o.TLSKey != "/k" || o.TLSCA != "/a" {
		t.Fatalf("%+v", o)
	}
	if strings.Join(o.AppArgs, " ") != "machida3 --app-arg" {
		t.Fatalf("app args %v", o.AppArgs)
	}
}

func TestExposedWarning(t *testing.T) {
	o, _ := ParseArgs([]string{"machida3", "--cluster-initializer", "--worker-count", "2", "--control", "0.0.0.0:6000",
		"--data", "127.0.0.1:6001", "--external", "10.1.2.3:5050"})
	w := exposedWarning(o)
	if strings.Count(w, "\n") != 0 || !strings.Contains(w, "0.0.0.0:6000 (control), 10.1.2.3:5050 (external)") || strings.Contains(w, "6001") {
		t.Fatalf("warning %q", w)
	}
	o, _ = ParseArgs([]string{"machida3", "--cluster-initializer", "--control", "127.0.0.1:6000", "--external", "localhost:5050"})
	if w := exposedWarning(o); w != "" {
		t.Fatalf("a loopback worker warned: %q", w)
	}
	// A worker without --my-control/--my-data listens on every
	// interface, as 0.6's did: it says so.
	o, _ = ParseArgs([]string{"machida3", "--control", "127.0.0.1:6000", "--name", "worker1", "--external", "127.0.0.1:5051"})
	if w := exposedWarning(o); !strings.Contains(w, ":0 (control), :0 (data)") {
		t.Fatalf("a worker listening on every interface: warning %q", w)
	}
}
