package abi

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/wardproject/ward/sdk/jsonvalue"
)

// Request data, response data and internal data cross the boundary as JSON
// (data_json), as over go-plugin, where sdk/plugin uses encoding/json
// (Decoder with UseNumber; Encoder without HTML escaping). sdk/jsonvalue
// reads and writes the same bytes without reflection, which inside a WASM
// guest is several times cheaper.

// decodeJSONMap decodes a JSON object keeping numbers exact (json.Number).
// Empty input and a top-level null decode as a nil map.
func decodeJSONMap(b []byte) (map[string]any, error) { return jsonvalue.DecodeObject(b) }

// encodeJSON encodes v without HTML escaping; nil for a nil interface.
func encodeJSON(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return jsonvalue.Append(nil, v, false)
}

// putJSON writes v's JSON as bytes field num (nothing for a nil v), or
// leaves b as it was and returns the error.
func putJSON(b []byte, num protowire.Number, v any) ([]byte, error) {
	if v == nil {
		return b, nil
	}
	start := len(b)
	var err error
	b = putMessage(b, num, func(b []byte) []byte {
		b, err = jsonvalue.Append(b, v, false)
		return b
	})
	if err != nil {
		return b[:start], err
	}
	return b, nil
}
