package transit

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// item is one unit of work of a data-plane endpoint: the single request's
// fields, or one element of batch_input. has records which string fields
// the element set (Vault tells a missing input from an empty one).
type item struct {
	str        map[string]string
	keyVersion int
}

func (it item) get(k string) string { return it.str[k] }

func (it item) has(k string) bool {
	_, ok := it.str[k]
	return ok
}

// errBatchEmpty is returned for a batch_input with no elements.
var errBatchEmpty = logical.InvalidRequest("missing batch input to process")

// decodeBatch parses batch_input: a list of objects whose values are
// strings (null is ignored), except key_version, an integer. Other keys
// are ignored, as Vault does. A malformed element fails the whole request
// (400), naming the element and field but not the value.
func decodeBatch(raw any) ([]item, error) {
	list, ok := raw.([]any)
	if !ok {
		return nil, logical.InvalidRequest("failed to parse batch input: source data must be an array, got %s", jsonKind(raw))
	}
	if len(list) == 0 {
		return nil, errBatchEmpty
	}
	items := make([]item, len(list))
	for i, el := range list {
		m, ok := el.(map[string]any)
		if !ok {
			return nil, logical.InvalidRequest("failed to parse batch input: [%d] expected an object, got %s", i, jsonKind(el))
		}
		it := item{str: make(map[string]string, len(m))}
		for k, v := range m {
			if v == nil {
				continue
			}
			if k == "key_version" {
				n, err := toInt(v)
				if err != nil {
					return nil, logical.InvalidRequest("failed to parse batch input: '[%d].key_version' %v", i, err)
				}
				it.keyVersion = n
				continue
			}
			s, ok := v.(string)
			if !ok {
				return nil, logical.InvalidRequest("failed to parse batch input: '[%d].%s' expected type 'string', got %s", i, k, jsonKind(v))
			}
			it.str[k] = s
		}
		items[i] = it
	}
	return items, nil
}

// jsonKind names a decoded JSON value's type without quoting it.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, float32, int, int64, int32, uint, uint64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func toInt(v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case int64:
		return int(n), nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
			return 0, fmt.Errorf("is not an integer")
		}
		return int(n), nil
	case json.Number:
		i, err := strconv.ParseInt(n.String(), 10, 32)
		if err != nil {
			return 0, fmt.Errorf("is not an integer")
		}
		return int(i), nil
	case string:
		i, err := strconv.ParseInt(n, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("is not an integer")
		}
		return int(i), nil
	}
	return 0, fmt.Errorf("expected an integer, got %s", jsonKind(v))
}

// singleItem builds the one item of a request without batch_input from the
// named string fields of the schema that the request set.
func singleItem(d *framework.FieldData, fields ...string) item {
	it := item{str: make(map[string]string, len(fields))}
	for _, f := range fields {
		if v, ok := d.GetOk(f); ok {
			it.str[f] = v.(string)
		}
	}
	if _, ok := d.Schema["key_version"]; ok {
		it.keyVersion = d.Get("key_version").(int)
	}
	return it
}

// decodeB64 decodes a base64 field of an item; what names it in the error.
func decodeB64(s, what string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, logical.InvalidRequest("unable to decode %s as base64: %v", what, err)
	}
	return b, nil
}

// contextsConsistent enforces Vault's rule that either every item of a
// batch sets context or none does; it returns whether they do.
func contextsConsistent(items []item) (bool, error) {
	set := items[0].get("context") != ""
	for _, it := range items[1:] {
		if (it.get("context") != "") != set {
			return false, logical.InvalidRequest("context should be set either in all the request blocks or in none")
		}
	}
	return set, nil
}

// outcome tallies a batch: Vault answers 400 when any item failed for a
// reason of the client's, else 500 when any failed internally, else 200;
// partial_failure_response_code replaces the failure status when at least
// one item succeeded.
type outcome struct {
	successes, userErrors, internalErrors bool
}

func (o *outcome) record(err error) string {
	if err == nil {
		o.successes = true
		return ""
	}
	if logical.CodeOf(err) == logical.CodeInternal {
		o.internalErrors = true
	} else {
		o.userErrors = true
	}
	return err.Error()
}

// apply sets resp's status for a batch (encrypt and decrypt only, as in
// Vault; the other batch endpoints answer 200 with per-item errors).
func (o *outcome) apply(d *framework.FieldData, resp *logical.Response) {
	code := 0
	switch {
	case o.userErrors:
		code = http.StatusBadRequest
	case o.internalErrors:
		code = http.StatusInternalServerError
	default:
		return
	}
	if raw, ok := d.GetOk("partial_failure_response_code"); ok && o.successes {
		if c := raw.(int); c >= 200 && c <= 599 {
			code = c
		} else {
			resp.AddWarning(fmt.Sprintf("invalid HTTP response code override from partial_failure_response_code, reverting to %d", code))
		}
	}
	if code != http.StatusOK {
		resp.StatusCode = code
	}
}

// singleError returns the error of a request without batch_input as the
// handler's error, keeping its code.
func singleError(msg string, internal bool) error {
	if internal {
		return &logical.Error{Code: logical.CodeInternal, Message: msg}
	}
	return &logical.Error{Code: logical.CodeInvalidRequest, Message: msg}
}
