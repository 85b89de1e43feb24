package wal

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// HeaderSize is the size of the segment header. It is a text line for
// every codec so `head -1` on a segment says what it is. 128 rather than
// 64 bytes so a 20-digit epoch still fits.
const HeaderSize = 128

const headerMagic = "RPWAL v1"

// castagnoli is the CRC32C table; the hardware instruction makes it cheap.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the parsed segment header.
type header struct {
	codec string // binary, text, jsonl
	first uint64 // seq of the first record the segment holds
	epoch uint64 // epoch of the first record; the binary codec's delta base
}

// encode renders the header as one HeaderSize line:
//
//	RPWAL v1 binary first=00000000000000000017 epoch=1 crc=1a2b3c4d<spaces>\n
//
// The CRC32C covers everything before " crc=".
func (h header) encode() []byte {
	b := make([]byte, 0, HeaderSize)
	b = append(b, headerMagic...)
	b = append(b, ' ')
	b = append(b, h.codec...)
	b = fmt.Appendf(b, " first=%020d epoch=%d", h.first, h.epoch)
	crc := crc32.Checksum(b, castagnoli)
	b = fmt.Appendf(b, " crc=%08x", crc)
	for len(b) < HeaderSize-1 {
		b = append(b, ' ')
	}
	return append(b, '\n')
}

// parseHeader checks and parses a segment header.
func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("header is %d bytes, want %d", len(b), HeaderSize)
	}
	b = b[:HeaderSize]
	if b[HeaderSize-1] != '\n' {
		return h, fmt.Errorf("header does not end in a newline")
	}
	line := string(bytes.TrimRight(b[:HeaderSize-1], " "))
	i := strings.LastIndex(line, " crc=")
	if i < 0 {
		return h, fmt.Errorf("header has no crc")
	}
	want, err := strconv.ParseUint(line[i+5:], 16, 32)
	if err != nil || len(line) != i+5+8 {
		return h, fmt.Errorf("header crc %q is not 8 hex digits", line[i+5:])
	}
	if got := crc32.Checksum([]byte(line[:i]), castagnoli); got != uint32(want) {
		return h, fmt.Errorf("header checksum mismatch")
	}
	f := strings.Split(line[:i], " ")
	if len(f) != 5 || f[0]+" "+f[1] != headerMagic {
		return h, fmt.Errorf("header is not %q", headerMagic)
	}
	h.codec = f[2]
	if codecByName(h.codec) == nil {
		return h, fmt.Errorf("header names unknown codec %q", h.codec)
	}
	first, ok := strings.CutPrefix(f[3], "first=")
	if h.first, err = strconv.ParseUint(first, 10, 64); !ok || err != nil || len(first) != 20 {
		return h, fmt.Errorf("header field %q is not first=<20 digits>", f[3])
	}
	epoch, ok := strings.CutPrefix(f[4], "epoch=")
	if h.epoch, err = strconv.ParseUint(epoch, 10, 64); !ok || err != nil {
		return h, fmt.Errorf("header field %q is not epoch=<n>", f[4])
	}
	return h, nil
}

// segment is one file of the log as the Log knows it.
type segment struct {
	name string // file name, segmentName(hdr.first)
	hdr  header
}

// SegmentInfo describes a segment for tools and metrics.
type SegmentInfo struct {
	Name  string // file name
	First uint64 // seq of its first record
	Size  int64  // bytes on disk (active segment: bytes written)
}

// segmentName is the file name of the segment starting at first: 20 digits
// so that lexical order is log order.
func segmentName(first uint64) string { return fmt.Sprintf("%020d.wal", first) }

// parseSegmentName returns the first seq of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ".wal")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	first, err := strconv.ParseUint(digits, 10, 64)
	return first, err == nil
}

// listSegments returns the segment file names in dir, oldest first. Other
// files (.broken copies, LOCK, temp files) are ignored.
func listSegments(fsys fsys.FS, dir string) ([]string, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		if _, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// readSegmentHeader reads and checks the header of dir/name. A bad header
// is a *CorruptError at offset 0.
func readSegmentHeader(fsys fsys.FS, dir, name string) (segment, error) {
	f, err := fsys.OpenFile(filepath.Join(dir, name), os.O_RDONLY, 0)
	if err != nil {
		return segment{}, fmt.Errorf("wal: open segment %s: %w", name, err)
	}
	defer f.Close()
	b := make([]byte, HeaderSize)
	n, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return segment{}, fmt.Errorf("wal: read segment %s: %w", name, err)
	}
	first, _ := parseSegmentName(name)
	h, err := parseHeader(b[:n])
	if err == nil && h.first != first {
		err = fmt.Errorf("header says first=%d, file name says %d", h.first, first)
	}
	if err != nil {
		return segment{}, &CorruptError{Segment: name, Offset: 0, Seq: first, Reason: err.Error()}
	}
	return segment{name: name, hdr: h}, nil
}

// syncDir fsyncs a directory so that a create, rename or remove in it is
// durable: without it a crash can lose the directory entry even though the
// file's data was synced.
func syncDir(fsys fsys.FS, dir string) error {
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("wal: sync dir %s: %w", dir, err)
	}
	return nil
}

// zeroChunk is compared against to find out whether a file range is zeros.
var zeroChunk [64 << 10]byte

// allZero reports whether f holds only zero bytes in [from, to).
func allZero(f io.ReaderAt, from, to int64) (bool, error) {
	buf := make([]byte, len(zeroChunk))
	for from < to {
		n := int(min(int64(len(buf)), to-from))
		m, err := f.ReadAt(buf[:n], from)
		if !bytes.Equal(buf[:m], zeroChunk[:m]) {
			return false, nil
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		from += int64(m)
	}
	return true, nil
}
