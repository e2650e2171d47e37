package portwait

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBind_WaitsForAPortTheDeadProcessStillHolds(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := held.Addr().String()
	tries, told := 0, 0
	ln, err := bindFor(time.Minute, time.Millisecond, func() (net.Listener, error) {
		tries++
		if tries == 3 {
			held.Close() // the process that had it has gone
		}
		return net.Listen("tcp", addr)
	}, func(err error) {
		told++
		require.ErrorIs(t, err, syscall.EADDRINUSE)
	})
	require.NoError(t, err)
	ln.Close()
	require.Equal(t, 3, tries, "the third try, once the port was free")
	require.Equal(t, 1, told, "told once")
}

func TestBind_APortThatStaysTakenIsAnErrorThatSaysHowLong(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer held.Close()
	_, err = bindFor(30*time.Millisecond, time.Millisecond, func() (net.Listener, error) {
		return net.Listen("tcp", held.Addr().String())
	}, nil)
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	require.True(t, strings.Contains(err.Error(), "(still in use after 30ms: another program listens there"), err.Error())
}

func TestBind_OtherErrorsAreNotRetried(t *testing.T) {
	tries := 0
	boom := errors.New("no such host")
	_, err := bindFor(time.Minute, time.Millisecond, func() (int, error) { tries++; return 0, boom }, func(error) { t.Error("not busy") })
	require.ErrorIs(t, err, boom)
	require.Equal(t, 1, tries)
}
