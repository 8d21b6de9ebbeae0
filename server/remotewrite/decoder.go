package remotewrite

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/snappy"
)

// Sentinels; check with errors.Is. The server maps all of them to 400.
var (
	// ErrTooLarge: the body exceeds Options.MaxCompressedBytes, or its
	// snappy header announces more than Options.MaxDecompressedBytes.
	ErrTooLarge = errors.New("remotewrite: request too large")
	// ErrSnappy: the body is not a valid snappy block.
	ErrSnappy = errors.New("remotewrite: invalid snappy block")
	// ErrMalformed: the uncompressed body is not a valid WriteRequest; the
	// error is a *ProtoError with the offset and field.
	ErrMalformed = errors.New("remotewrite: malformed protobuf")
)

// Default limits. Cortex and Mimir cap a decompressed push at 100 MiB
// (-distributor.max-recv-msg-size); a sender's batch of 2000 samples is
// about 30-60 KB compressed, 10x that uncompressed, so 10 MiB compressed
// leaves a wide margin while bounding the work a request can ask for.
const (
	DefaultMaxCompressedBytes   = 10 << 20
	DefaultMaxDecompressedBytes = 100 << 20
)

// maxSnappyExpansion bounds the ratio of uncompressed to compressed size of
// a snappy block: the densest element is a copy with a 2-byte offset, 3
// bytes for at most 64 (21.3x); literals and other copies expand less.
// (S2's repeat copies expand more, but no snappy encoder writes them.)
const maxSnappyExpansion = 22

// Options are the decoder's limits.
type Options struct {
	// MaxCompressedBytes: reject a body longer than this before looking
	// at it. Zero means DefaultMaxCompressedBytes.
	MaxCompressedBytes int
	// MaxDecompressedBytes: reject a body whose snappy header announces a
	// longer uncompressed size, before allocating. Zero means
	// DefaultMaxDecompressedBytes.
	MaxDecompressedBytes int
}

func (o Options) withDefaults() Options {
	if o.MaxCompressedBytes == 0 {
		o.MaxCompressedBytes = DefaultMaxCompressedBytes
	}
	if o.MaxDecompressedBytes == 0 {
		o.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	return o
}

// Validate reports every problem of o at once.
func (o Options) Validate() error {
	var errs []error
	if o.MaxCompressedBytes < 0 {
		errs = append(errs, fmt.Errorf("remotewrite: MaxCompressedBytes %d is negative", o.MaxCompressedBytes))
	}
	if o.MaxDecompressedBytes < 0 {
		errs = append(errs, fmt.Errorf("remotewrite: MaxDecompressedBytes %d is negative", o.MaxDecompressedBytes))
	}
	// snappy's header is a uint32: larger limits mean nothing.
	if o.MaxDecompressedBytes > 0 && uint64(o.MaxDecompressedBytes) > 1<<32-1 {
		errs = append(errs, fmt.Errorf("remotewrite: MaxDecompressedBytes %d exceeds the snappy block limit of 4 GiB", o.MaxDecompressedBytes))
	}
	return errors.Join(errs...)
}

// Decoder decodes snappy-compressed remote-write 1.0 bodies. It holds only
// its immutable Options and is safe for concurrent use; the buffers live
// in each Request.
type Decoder struct {
	opts Options // immutable after NewDecoder
}

// NewDecoder returns a Decoder with opts (zero fields take defaults).
func NewDecoder(opts Options) (*Decoder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Decoder{opts: opts.withDefaults()}, nil
}

// MaxCompressedBytes is the longest body Decode accepts; readers of HTTP
// bodies stop one byte past it.
func (d *Decoder) MaxCompressedBytes() int { return d.opts.MaxCompressedBytes }

// DecodedLen checks body's size and snappy header against the limits and
// returns the uncompressed length it announces, which Decode will
// allocate (if the Request's buffer is smaller): a caller that accounts
// for memory reserves it first. It allocates nothing but its error.
func (d *Decoder) DecodedLen(body []byte) (int, error) {
	if len(body) > d.opts.MaxCompressedBytes {
		return 0, fmt.Errorf("%w: compressed body of %d bytes exceeds the limit of %d bytes",
			ErrTooLarge, len(body), d.opts.MaxCompressedBytes)
	}
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return 0, fmt.Errorf("%w: header: %v", ErrSnappy, err)
	}
	if n > d.opts.MaxDecompressedBytes {
		return 0, fmt.Errorf("%w: snappy header announces %d uncompressed bytes, over the limit of %d bytes",
			ErrTooLarge, n, d.opts.MaxDecompressedBytes)
	}
	// Without this check a 20-byte body announcing MaxDecompressedBytes
	// would make us allocate that much before the decoder finds it empty.
	if n > maxSnappyExpansion*len(body) {
		return 0, fmt.Errorf("%w: header announces %d bytes, more than snappy can encode in %d",
			ErrSnappy, n, len(body))
	}
	return n, nil
}

// Decode decompresses body, a snappy block (not the framed stream
// format), into r's reusable buffer and decodes it with r.Unmarshal. The
// size limits are checked before anything is allocated (DecodedLen), so a
// snappy bomb costs a few bytes of header parsing. body is not retained.
func (d *Decoder) Decode(r *Request, body []byte) error {
	out, err := d.decompress(r, body)
	if err != nil {
		return err
	}
	return r.Unmarshal(out)
}

// DecodeV2 is Decode for a remote-write 2.0 body: it decompresses body
// and decodes it with r.UnmarshalV2.
func (d *Decoder) DecodeV2(r *Request, body []byte) error {
	out, err := d.decompress(r, body)
	if err != nil {
		return err
	}
	return r.UnmarshalV2(out)
}

// decompress decompresses body into r's reusable buffer, within the
// limits, and returns the uncompressed bytes.
func (d *Decoder) decompress(r *Request, body []byte) ([]byte, error) {
	r.Reset()
	n, err := d.DecodedLen(body)
	if err != nil {
		return nil, err
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	// snappy.Decode is klauspost's s2 decoder (assembly on amd64/arm64).
	// It also accepts S2's repeat-offset copies, which standard snappy
	// forbids; snappy.DecodeStrict rejects them but is pure Go and slower.
	// Accepting a superset of valid bodies harms no sender.
	out, err := snappy.Decode(r.buf[:n], body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnappy, err)
	}
	// INVARIANT: out aliases r.buf (len(r.buf[:n]) == n is enough room), so
	// the next Decode reuses it.
	return out, nil
}
