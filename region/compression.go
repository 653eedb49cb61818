package region

import (
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4/options"
)

// Compression is how the state machine compresses the blocks of the Badger
// tables it writes. Badger records each table's compression in its
// manifest, so a node reopened with another setting still reads the tables
// written before; only new tables (flushes, compactions) follow the new one.
type Compression string

const (
	// CompressionNone writes tables uncompressed: the default. Under a
	// sustained 64-client load snappy cost 7 % more server CPU per append
	// (memtable flushes compress every block into a new buffer; ADR 0008).
	CompressionNone Compression = "none"
	// CompressionSnappy trades that CPU for disk: JSON events shrink
	// several-fold.
	CompressionSnappy Compression = "snappy"
	// CompressionZSTD compresses tighter than snappy at more CPU.
	CompressionZSTD Compression = "zstd"
)

// Compressions lists the accepted values, in the order help text shows them.
var Compressions = []Compression{CompressionNone, CompressionSnappy, CompressionZSTD}

// ParseCompression returns the Compression named s ("" means none).
func ParseCompression(s string) (Compression, error) {
	if s == "" {
		return CompressionNone, nil
	}
	for _, c := range Compressions {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: compression %q: must be one of %s", ErrInvalidConfig, s, strings.Join(CompressionNames(), ", "))
}

// CompressionNames returns the names of Compressions, in order.
func CompressionNames() []string {
	names := make([]string, len(Compressions))
	for i, c := range Compressions {
		names[i] = string(c)
	}
	return names
}

// badger returns Badger's compression type for c ("" means none).
func (c Compression) badger() (options.CompressionType, error) {
	switch c {
	case "", CompressionNone:
		return options.None, nil
	case CompressionSnappy:
		return options.Snappy, nil
	case CompressionZSTD:
		return options.ZSTD, nil
	}
	_, err := ParseCompression(string(c))
	return options.None, err
}
