package logical

// Schema describes a backend's paths: it feeds help output, the OpenAPI
// document and the conformance suite.
type Schema struct {
	Help  string
	Paths []PathSchema
}

// PathSchema describes one path pattern (a regular expression, anchored).
type PathSchema struct {
	Pattern     string
	Synopsis    string
	Description string
	Operations  []Operation
	Fields      []FieldInfo
}

// FieldInfo describes one input field of a path.
type FieldInfo struct {
	Name          string
	Type          string
	Description   string
	Required      bool
	Default       any
	AllowedValues []any
}
