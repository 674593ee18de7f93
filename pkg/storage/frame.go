package storage

import (
	"encoding/binary"
	"errors"
	"hash/crc32"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
)

// A segment file starts with fileMagic, then holds records, each a
// header and an encoded alert (alert.Wire's JSON, the bytes sent to
// Alertmanager):
//
//	magic     4 bytes  recordMagic, where the reader resynchronises after a corrupt record
//	length    4 bytes  of the JSON
//	labels    4 bytes  where the labels end in the JSON (alert.Wire.LabelsEnd)
//	flags     1 byte   flagResolve
//	checksum  4 bytes  CRC-32C of length, labels, flags and the JSON
//	JSON      length bytes
//
// Integers are little-endian.
const (
	fileMagic  = "FAMBSPL1"
	headerSize = 17
	// maxRecord bounds one record, so a corrupt length cannot make the
	// reader allocate gigabytes.
	maxRecord   = 16 << 20
	flagResolve = 1
)

var recordMagic = [4]byte{0xfa, 0xb1, 0x5e, 0xc0}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the record of w to b.
func appendRecord(b []byte, w *alert.Wire) []byte {
	start := len(b)
	b = append(b, recordMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(w.JSON)))
	b = binary.LittleEndian.AppendUint32(b, uint32(w.LabelsEnd()))
	var flags byte
	if w.Resolve {
		flags |= flagResolve
	}
	b = append(b, flags)
	crc := crc32.Update(crc32.Checksum(b[start+4:start+13], crcTable), crcTable, w.JSON)
	b = binary.LittleEndian.AppendUint32(b, crc)
	return append(b, w.JSON...)
}

var errCorrupt = errors.New("corrupt record")

// header is a record's header, read.
type header struct {
	length    int
	labelsEnd int
	flags     byte
	crc       uint32
}

func parseHeader(h []byte) (header, bool) {
	if [4]byte(h[0:4]) != recordMagic {
		return header{}, false
	}
	hd := header{
		length:    int(binary.LittleEndian.Uint32(h[4:8])),
		labelsEnd: int(binary.LittleEndian.Uint32(h[8:12])),
		flags:     h[12],
		crc:       binary.LittleEndian.Uint32(h[13:17]),
	}
	if hd.length > maxRecord || hd.labelsEnd > hd.length || hd.flags&^flagResolve != 0 {
		return header{}, false
	}
	return hd, true
}

// decodeRecord checks a record whose header h was parsed from raw (the
// header bytes) and returns its alert; it keeps payload.
func decodeRecord(raw []byte, hd header, payload []byte) (*alert.Wire, error) {
	crc := crc32.Update(crc32.Checksum(raw[4:13], crcTable), crcTable, payload)
	if crc != hd.crc {
		return nil, errCorrupt
	}
	w, err := alert.Parse(payload, hd.labelsEnd, hd.flags&flagResolve != 0)
	if err != nil {
		return nil, errCorrupt
	}
	return w, nil
}
