// Command readsynod decodes record values of Synod's internal topics with hamba/avro.
//
// Usage: readsynod <schemas/avro> <value file>...; prints, per value, its file, the
// envelope's type, message_id, task_id and sender role, tab-separated. A value is
// C3 01, the writer schema's 8-byte little-endian CRC-64-AVRO fingerprint, then the
// Avro body; schemas/avro/history/<Type>/<fingerprint>.avsc holds every writer schema.
package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hamba/avro/v2"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: readsynod <schemas/avro> <value file>...")
		os.Exit(2)
	}
	if os.Args[1] == "-fingerprints" { // hamba/avro's own fingerprint of each history schema
		if err := printFingerprints(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	writers, err := loadWriters(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, file := range os.Args[2:] {
		if err := readOne(writers, file); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", file, err)
			os.Exit(1)
		}
	}
}

// loadWriters indexes every history schema by the fingerprint in its file name.
// Not by schema.Fingerprint(): hamba/avro keeps "logicalType" in its Parsing
// Canonical Form, so for Synod's schemas (created_at is a timestamp) it differs
// from the wire's (docs/wire.md).
func loadWriters(dir string) (map[string]avro.Schema, error) {
	files, err := filepath.Glob(filepath.Join(dir, "history", "*", "*.avsc"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no schemas under %s/history (run from a Synod checkout)", dir)
	}
	writers := make(map[string]avro.Schema, len(files))
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		// A fresh cache per file: the history holds several versions of one name.
		schema, err := avro.ParseBytesWithCache(text, "", &avro.SchemaCache{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		writers[strings.TrimSuffix(filepath.Base(file), ".avsc")] = schema
	}
	return writers, nil
}

func printFingerprints(dir string) error {
	// A schema without a logical type, where hamba/avro agrees with the wire.
	control := avro.MustParse(`{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}`)
	fp, err := control.FingerprintUsing(avro.CRC64Avro)
	if err != nil {
		return err
	}
	fmt.Printf("control\t%x\n", reversed(fp))
	files, _ := filepath.Glob(filepath.Join(dir, "history", "*", "*.avsc"))
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		schema, err := avro.ParseBytesWithCache(text, "", &avro.SchemaCache{})
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		computed, err := schema.FingerprintUsing(avro.CRC64Avro)
		if err != nil {
			return err
		}
		// CRC64Avro comes big-endian; the wire (and the file name) is little-endian.
		fmt.Printf("%s\t%x\n", strings.TrimSuffix(filepath.Base(file), ".avsc"), reversed(computed))
	}
	return nil
}

func reversed(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

func readOne(writers map[string]avro.Schema, file string) error {
	value, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if len(value) < 10 || !bytes.Equal(value[:2], []byte{0xC3, 0x01}) {
		return fmt.Errorf("not Avro single-object encoding (a JSON edge record?)")
	}
	schema, ok := writers[hex.EncodeToString(value[2:10])]
	if !ok {
		return fmt.Errorf("no schema for fingerprint %x (newer than this checkout?)", value[2:10])
	}
	var envelope map[string]any
	if err := avro.Unmarshal(schema, value[10:], &envelope); err != nil {
		return err
	}
	sender, _ := envelope["sender"].(map[string]any)
	fmt.Printf("%s\t%v\t%v\t%v\t%v\n", filepath.Base(file), envelope["type"],
		envelope["message_id"], orNone(envelope["task_id"]), sender["role"])
	return nil
}

// orNone prints a null union as Python and Java do, so the outputs compare.
func orNone(v any) any {
	switch u := v.(type) {
	case nil:
		return "null"
	case map[string]any: // hamba/avro's form of a non-null union value
		for _, inner := range u {
			return inner
		}
	}
	return v
}
