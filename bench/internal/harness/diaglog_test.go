package harness

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

// A late log writes nothing until turned on, then every record with the attributes and
// groups its loggers added, in the order they added them.
func TestLateLogWritesFromTheMomentItIsTurnedOn(t *testing.T) {
	late := newLateLog()
	logger := slog.New(late).With("node", "n1").WithGroup("g").With("k", "v")
	logger.Info("before")
	var buf bytes.Buffer
	late.turnOn(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	logger.Debug("after", "x", 1)
	require.NotContains(t, buf.String(), "before", "nothing is written before the log is turned on")
	require.Contains(t, buf.String(), "msg=after node=n1 g.k=v g.x=1", "attributes before the group stay outside it")
}
