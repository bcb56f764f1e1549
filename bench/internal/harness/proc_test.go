package harness

import (
	"os"
	"testing"
)

func TestCountFDsCountsOpenDescriptors(t *testing.T) {
	before := countFDs()
	if before < 3 {
		t.Fatalf("countFDs = %d, want at least stdin, stdout and stderr", before)
	}
	var files []*os.File
	for range 50 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if got := countFDs(); got != before+50 {
		t.Errorf("with 50 more files open countFDs = %d, want %d", got, before+50)
	}
	for _, f := range files {
		_ = f.Close()
	}
	if got := countFDs(); got != before {
		t.Errorf("after closing them countFDs = %d, want %d", got, before)
	}
}
