package linkauth

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
