package boundedread

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFileRefusesWhatIsNotASmallRegularFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "key.pub")
	if err := os.WriteFile(small, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(small, 6); err != nil || string(b) != "hello\n" {
		t.Fatalf("ReadFile(small) = %q, %v", b, err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 7), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{"/dev/zero", "not a regular file (a character device)"},
		{fifo, "not a regular file (a named pipe)"},
		{dir, "not a regular file (a directory)"},
		{big, "7 bytes, larger than the limit of 6 bytes"},
	} {
		start := time.Now()
		_, err := ReadFile(c.path, 6)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("ReadFile(%s) = %v, want an error naming the file and %q", c.path, err, c.want)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("ReadFile(%s) took %s", c.path, d)
		}
	}
	if _, err := ReadFile(big, 6); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("a file over the limit is not EFBIG: %v", err)
	}
}

func TestReadAllStopsAtTheLimitOfAnEndlessReader(t *testing.T) {
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	_, err = ReadAll(f, 0, 1<<20, "/dev/zero")
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("ReadAll(/dev/zero) = %v, want a size error", err)
	}
	b, err := ReadAll(strings.NewReader("abc"), 100, 3, "x")
	if err != nil || string(b) != "abc" {
		t.Fatalf("ReadAll at exactly the limit = %q, %v", b, err)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{17: "17 bytes", 4 << 20: "4 MiB", 1536: "1.5 KiB", 3 << 30: "3 GiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
