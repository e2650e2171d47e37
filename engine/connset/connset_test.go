package connset

import (
	"net"
	"testing"
)

func TestCloseAllClosesListenerAndConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer b.Close()
	var s Set
	if !s.Add(a) {
		t.Fatal("Add refused before CloseAll")
	}
	s.CloseAll(ln)
	if _, err := a.Write([]byte("x")); err == nil {
		t.Error("connection still open after CloseAll")
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("listener still open after CloseAll")
	}
	c, d := net.Pipe()
	defer d.Close()
	if s.Add(c) {
		t.Error("Add accepted a connection after CloseAll")
	}
	s.Remove(c)
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("Remove did not close the connection")
	}
}
