package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The gossip encoding of a Desc, version 1:
//
//	byte      version (1)
//	uvarint   number of instances
//	per instance:
//	  uvarint-length-prefixed id, addr, zone
//	  byte    state
//	  varint  timestamp, registered (Unix ms)
//	  uvarint number of tokens, then each token as a uvarint delta from
//	          the previous one (tokens are sorted)
//
// Delta-encoded tokens take about 3.2 bytes each for 128 random tokens per
// instance, so a single instance fits in one gossip packet.
const codecVersion = 1

var errCorrupt = errors.New("corrupt ring descriptor")

// Marshal encodes d. Instances are written in map order; decoding does not
// depend on it.
func (d *Desc) Marshal() []byte {
	return d.AppendMarshal(make([]byte, 0, d.encodedSizeHint()))
}

func (d *Desc) encodedSizeHint() int {
	n := 1 + binary.MaxVarintLen64
	for _, in := range d.Instances {
		n += len(in.ID) + len(in.Addr) + len(in.Zone) + 3 + 1 + 2*binary.MaxVarintLen64 + 5 + 4*len(in.Tokens)
	}
	return n
}

// AppendMarshal appends the encoding of d to b.
func (d *Desc) AppendMarshal(b []byte) []byte {
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, uint64(d.Len()))
	for _, in := range d.Instances {
		b = appendString(b, in.ID)
		b = appendString(b, in.Addr)
		b = appendString(b, in.Zone)
		b = append(b, byte(in.State))
		b = binary.AppendVarint(b, in.Timestamp)
		b = binary.AppendVarint(b, in.Registered)
		b = binary.AppendUvarint(b, uint64(len(in.Tokens)))
		prev := uint32(0)
		for _, t := range in.Tokens {
			b = binary.AppendUvarint(b, uint64(t-prev))
			prev = t
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Unmarshal decodes a descriptor written by Marshal. It validates as it
// goes, since the bytes come from the network: a corrupt message yields an
// error, never a panic or a descriptor with unsorted tokens.
func Unmarshal(b []byte) (*Desc, error) {
	r := reader{b: b}
	if v := r.byte(); v != codecVersion {
		if r.err != nil {
			return nil, r.err
		}
		return nil, fmt.Errorf("%w: unknown version %d", errCorrupt, v)
	}
	n := r.uvarint()
	if n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: instance count %d", errCorrupt, n)
	}
	d := &Desc{Instances: make(map[string]Instance, n)}
	for range n {
		var in Instance
		in.ID = r.string()
		in.Addr = r.string()
		in.Zone = r.string()
		in.State = State(r.byte())
		in.Timestamp = r.varint()
		in.Registered = r.varint()
		nt := r.uvarint()
		if r.err != nil {
			return nil, r.err
		}
		if nt > uint64(len(r.b)) || in.State >= numStates {
			return nil, fmt.Errorf("%w: instance %q", errCorrupt, in.ID)
		}
		if nt > 0 {
			in.Tokens = make([]uint32, nt)
			var prev uint64
			for j := range in.Tokens {
				// Checked before adding so a huge delta cannot wrap around
				// and yield unsorted tokens.
				delta := r.uvarint()
				if delta > 1<<32-1-prev || (j > 0 && delta == 0) {
					return nil, fmt.Errorf("%w: tokens of %q", errCorrupt, in.ID)
				}
				prev += delta
				in.Tokens[j] = uint32(prev)
			}
		}
		if r.err != nil {
			return nil, r.err
		}
		d.Instances[in.ID] = in
	}
	if r.err == nil && len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(r.b))
	}
	return d, r.err
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated", errCorrupt)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
