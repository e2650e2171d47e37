package linkauth

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestDialTool_WithTheSecretFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("a secret of the operator tools\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	server, err := Load(Files{SecretFile: file})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if sc, err := server.Server(context.Background(), c, External); err == nil {
			sc.Write([]byte("ok"))
		}
	}()
	t.Setenv(SecretFileEnv, file) // the option not given: the environment names the file
	g, err := ToolOptions{}.Guard(5 * time.Second)
	if err != nil || !g.Secret() {
		t.Fatalf("guard %v, %v", g, err)
	}
	c, err := DialTool(g, l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 2)
	if _, err := c.Read(b); err != nil || string(b) != "ok" {
		t.Fatalf("%q %v", b, err)
	}

	os.Chmod(file, 0o644)
	if _, err := (ToolOptions{SecretFile: file}).Guard(time.Second); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable secret file: %v", err)
	}
}

// An option given with an empty value is refused; one not given, or given
// a file, is not.
func TestToolOptions_RefuseEmpty(t *testing.T) {
	for _, tc := range []struct {
		args []string
		bad  string
	}{
		{nil, ""},
		{[]string{"--cluster-secret-file", "s"}, ""},
		{[]string{"--cluster-secret-file", ""}, "--cluster-secret-file is empty"},
		{[]string{"--cluster-secret-file="}, "--cluster-secret-file is empty"},
		{[]string{"--tls-cert", " ", "--tls-key", "k", "--tls-ca", "c"}, "--tls-cert is empty"},
	} {
		var o ToolOptions
		fs := pflag.NewFlagSet("tool", pflag.ContinueOnError)
		o.Register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := o.RefuseEmpty(fs)
		if (tc.bad == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.bad)
		}
	}
}
