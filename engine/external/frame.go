package external

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// MsgID is the message id carried by every external channel frame.
type MsgID uint16

// Message ids of spec 3.7. "→" messages are requests to the worker, the
// others are its replies.
const (
	MsgPrint                                    MsgID = 1  // → text to log
	MsgRotateLog                                MsgID = 2  // → worker name
	MsgCleanShutdown                            MsgID = 3  // → optional text
	MsgShrinkRequest                            MsgID = 4  // → JSON ShrinkRequest
	MsgShrinkQueryResponse                      MsgID = 5  // JSON eligible workers
	MsgShrinkErrorResponse                      MsgID = 6  // status text, also on success
	MsgPartitionQuery                           MsgID = 7  // →
	MsgPartitionQueryResponse                   MsgID = 8  // JSON
	MsgClusterStatusQuery                       MsgID = 9  // →
	MsgClusterStatusQueryResponse               MsgID = 10 // JSON
	MsgClusterStatusQueryResponseNotInitialized MsgID = 11 // empty
	MsgPartitionCountQuery                      MsgID = 12 // →
	MsgPartitionCountQueryResponse              MsgID = 13 // JSON
	MsgSourceIDsQuery                           MsgID = 14 // →
	MsgSourceIDsQueryResponse                   MsgID = 15 // JSON
	MsgReportStatus                             MsgID = 16 // → status code, no reply
	MsgStateEntityQuery                         MsgID = 17 // →
	MsgStateEntityQueryResponse                 MsgID = 18 // JSON
	MsgStatelessPartitionQuery                  MsgID = 19 // →
	MsgStatelessPartitionQueryResponse          MsgID = 20 // JSON
	MsgStateEntityCountQuery                    MsgID = 21 // →
	MsgStateEntityCountQueryResponse            MsgID = 22 // JSON
	MsgStatelessPartitionCountQuery             MsgID = 23 // →
	MsgStatelessPartitionCountQueryResponse     MsgID = 24 // JSON
)

var msgNames = [...]string{
	MsgPrint:                                    "Print",
	MsgRotateLog:                                "RotateLog",
	MsgCleanShutdown:                            "CleanShutdown",
	MsgShrinkRequest:                            "ShrinkRequest",
	MsgShrinkQueryResponse:                      "ShrinkQueryResponse",
	MsgShrinkErrorResponse:                      "ShrinkErrorResponse",
	MsgPartitionQuery:                           "PartitionQuery",
	MsgPartitionQueryResponse:                   "PartitionQueryResponse",
	MsgClusterStatusQuery:                       "ClusterStatusQuery",
	MsgClusterStatusQueryResponse:               "ClusterStatusQueryResponse",
	MsgClusterStatusQueryResponseNotInitialized: "ClusterStatusQueryResponseNotInitialized",
	MsgPartitionCountQuery:                      "PartitionCountQuery",
	MsgPartitionCountQueryResponse:              "PartitionCountQueryResponse",
	MsgSourceIDsQuery:                           "SourceIdsQuery",
	MsgSourceIDsQueryResponse:                   "SourceIdsQueryResponse",
	MsgReportStatus:                             "ReportStatus",
	MsgStateEntityQuery:                         "StateEntityQuery",
	MsgStateEntityQueryResponse:                 "StateEntityQueryResponse",
	MsgStatelessPartitionQuery:                  "StatelessPartitionQuery",
	MsgStatelessPartitionQueryResponse:          "StatelessPartitionQueryResponse",
	MsgStateEntityCountQuery:                    "StateEntityCountQuery",
	MsgStateEntityCountQueryResponse:            "StateEntityCountQueryResponse",
	MsgStatelessPartitionCountQuery:             "StatelessPartitionCountQuery",
	MsgStatelessPartitionCountQueryResponse:     "StatelessPartitionCountQueryResponse",
}

// String returns the 0.6 name of the message ("PartitionQuery"), or
// "MsgID(<n>)" for an unknown id.
func (m MsgID) String() string {
	if int(m) < len(msgNames) && msgNames[m] != "" {
		return msgNames[m]
	}
	return "MsgID(" + strconv.Itoa(int(m)) + ")"
}

// MaxFrameLen is the largest length field ReadFrame accepts (id included):
// requests are small, so anything longer is taken as garbage.
const MaxFrameLen = 1 << 20

// ErrMalformedFrame is wrapped by the errors ReadFrame returns for a
// length field that can't be a frame.
var ErrMalformedFrame = errors.New("malformed frame")

// Frame is one decoded frame.
type Frame struct {
	ID      MsgID
	Payload []byte
}

// ReadFrame reads the next frame from r, skipping frames of length 0. It
// returns io.EOF if r ends before a frame starts, io.ErrUnexpectedEOF if
// it ends inside one, and an error wrapping ErrMalformedFrame for a length
// of 1 or above MaxFrameLen (r is then positioned after the length field).
// The payload is freshly allocated and owned by the caller.
func ReadFrame(r io.Reader) (Frame, error) {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return Frame{}, err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		switch {
		case n == 0:
			continue
		case n == 1:
			return Frame{}, fmt.Errorf("%w: length 1 leaves no room for the 2-byte message id", ErrMalformedFrame)
		case n > MaxFrameLen:
			return Frame{}, fmt.Errorf("%w: length %d exceeds the limit of %d", ErrMalformedFrame, n, MaxFrameLen)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
		return Frame{ID: MsgID(binary.BigEndian.Uint16(body)), Payload: body[2:]}, nil
	}
}

// AppendFrame appends the frame for id and payload to b and returns the
// extended slice. It does not enforce MaxFrameLen: replies may be larger
// than requests.
func AppendFrame(b []byte, id MsgID, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(2+len(payload)))
	b = binary.BigEndian.AppendUint16(b, uint16(id))
	return append(b, payload...)
}
