// Package httpapi is Ward's HTTP API: Vault's /v1 conventions (envelope,
// headers, status codes, LIST and ?list=true) over gorilla/mux. It decodes
// requests, hands them to the kernel and encodes results; it holds no state
// and makes no authorization decision of its own, except that the
// pre-unseal endpoints (init, unseal, seal-status, health, leader) are
// served here because they must work while sealed.
package httpapi
