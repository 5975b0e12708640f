// Package framework builds a logical.Backend from declared paths: each path
// is an anchored regular expression with typed fields and one handler per
// operation, plus help text. It is how first-party plugins (and the kernel's
// own sys and token backends) are written, in the manner of Vault's SDK
// framework, and it is what third-party plugin authors import.
//
// The framework enforces what it declares: unknown operations answer
// "unsupported operation", values that do not convert to the field's type and
// values outside AllowedValues answer 400, before any handler runs.
package framework
