package storage

import (
	"bytes"
	"io"
	"os"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
)

// readChunk is how much of a segment a reader reads at once.
const readChunk = 64 << 10

// segReader reads the records of one segment file, up to a limit: the
// bytes written so far for the segment being written, the file's size
// for the others.
type segReader struct {
	f    io.ReaderAt
	pos  int64  // offset of the next record
	buf  []byte // file bytes from bufAt
	data []byte // the part of buf that was read
	at   int64
}

func openReader(path string, pos int64) (*segReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &segReader{f: f, pos: pos}, nil
}

func (r *segReader) close() {
	if c, ok := r.f.(io.Closer); ok {
		_ = c.Close()
	}
	r.f = nil
}

// bytes returns the n bytes of the file at off, when they lie before limit.
func (r *segReader) bytes(off int64, n int, limit int64) ([]byte, bool) {
	if off < 0 || n < 0 || off+int64(n) > limit {
		return nil, false
	}
	if off >= r.at && off+int64(n) <= r.at+int64(len(r.data)) {
		return r.data[off-r.at : off-r.at+int64(n)], true
	}
	size := int(min(int64(max(readChunk, n)), limit-off))
	if cap(r.buf) < size {
		r.buf = make([]byte, size)
	}
	if r.f == nil {
		return nil, false
	}
	got, err := r.f.ReadAt(r.buf[:size], off)
	r.data, r.at = r.buf[:got], off
	if got < n {
		_ = err // a file shorter than limit: the bytes are not there
		return nil, false
	}
	return r.data[:n], true
}

// next returns the record at the read position and moves past it, or
// io.EOF at limit. A corrupt or torn record is skipped: the reader goes
// on at the next record with a valid header and checksum, and skipped
// says how many bytes that cost.
func (r *segReader) next(limit int64) (w *alert.Wire, at int64, skipped int64, err error) {
	for {
		if r.pos >= limit {
			return nil, 0, skipped, io.EOF
		}
		if w, n, ok := r.recordAt(r.pos, limit); ok {
			at = r.pos
			r.pos += n
			return w, at, skipped, nil
		}
		from := r.pos
		r.resync(limit)
		skipped += r.pos - from
	}
}

// recordAt reads the record at off, when a valid one starts there.
func (r *segReader) recordAt(off, limit int64) (*alert.Wire, int64, bool) {
	h, ok := r.bytes(off, headerSize, limit)
	if !ok {
		return nil, 0, false
	}
	hd, ok := parseHeader(h)
	if !ok {
		return nil, 0, false
	}
	raw := [headerSize]byte(h)
	p, ok := r.bytes(off+headerSize, hd.length, limit)
	if !ok {
		return nil, 0, false
	}
	w, err := decodeRecord(raw[:], hd, bytes.Clone(p))
	if err != nil {
		return nil, 0, false
	}
	return w, headerSize + int64(hd.length), true
}

// resync moves the read position to the next offset after it where a
// valid record starts, or to limit.
func (r *segReader) resync(limit int64) {
	off := r.pos + 1
	for off+headerSize <= limit {
		window, ok := r.bytes(off, int(min(readChunk, limit-off)), limit)
		if !ok {
			break
		}
		i := bytes.Index(window, recordMagic[:])
		if i < 0 {
			// The magic may straddle the end of the window.
			off += int64(max(1, len(window)-len(recordMagic)+1))
			continue
		}
		if _, _, ok := r.recordAt(off+int64(i), limit); ok {
			r.pos = off + int64(i)
			return
		}
		off += int64(i) + 1
	}
	r.pos = limit
}
