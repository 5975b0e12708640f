package audit

import "time"

// Auth describes a token: the caller's token on a request, or the token a
// login minted on a response. The kernel fills it; the device redacts it.
type Auth struct {
	// ClientToken is the token itself. It is always written as an HMAC
	// (unless LogRaw).
	ClientToken string
	// Accessor is written as an HMAC unless RawAccessors (or LogRaw).
	Accessor string
	// DisplayName, the policies, EntityID and TokenType identify who acted
	// with which authority; they are written as they are (as Vault does).
	DisplayName      string
	Policies         []string
	TokenPolicies    []string
	IdentityPolicies []string
	// Metadata values are written as HMACs: auth methods put free-form
	// data there.
	Metadata  map[string]string
	EntityID  string
	TokenType string
	// TTL is written in seconds (token_ttl), IssueTime as RFC 3339
	// (token_issue_time).
	TTL       time.Duration
	IssueTime time.Time
	NumUses   int
}

// Condition is one CEL condition evaluated for the ACL decision (the
// kernel copies policy.ConditionResult into it).
type Condition struct {
	Policy     string
	Pattern    string
	Expression string
	Result     bool
	// Err classifies an evaluation failure; it never quotes request data.
	Err string
}

// Request is what the kernel knows about a request when it logs it, before
// running it. Every field is plain data; the device never keeps a
// reference to it after Log returns.
type Request struct {
	// ID is the request ID (the envelope's request_id).
	ID        string
	Operation string
	// Path is the full request path, mount included ("secret/data/app"),
	// as Vault logs it.
	Path string
	// Data is the request body. Every string in it, at any depth, is
	// written as an HMAC.
	Data map[string]any

	MountPoint    string
	MountType     string
	MountAccessor string

	// ClientToken and ClientTokenAccessor are the caller's token and its
	// accessor ("" on unauthenticated paths).
	ClientToken         string
	ClientTokenAccessor string
	// Auth is the caller's token entry; nil when there is none.
	Auth *Auth

	// RemoteAddr is the client address, "host:port" or "host".
	RemoteAddr string
	WrapTTL    time.Duration
	// Headers are the request headers the kernel chose to audit; their
	// values are written as HMACs.
	Headers map[string][]string

	// PolicyConditions are the CEL conditions evaluated for the decision
	// (Ward extension, "policy_conditions" on request entries).
	PolicyConditions []Condition

	// Error is set when the request is refused before it runs (permission
	// denied, invalid token...): the request entry then carries it.
	Error string
}

// Response is what the kernel knows when the request has run. Request is
// required: the response entry repeats the request and its auth, as
// Vault's does.
type Response struct {
	Request *Request

	// StatusCode is the HTTP status sent (Ward extension,
	// "response.status_code").
	StatusCode int
	// Data is the response data; every string in it, at any depth, is
	// written as an HMAC.
	Data map[string]any
	// Auth is the token a login minted (its ClientToken and Accessor are
	// redacted like the caller's).
	Auth     *Auth
	Warnings []string
	// LeaseID is written as response.secret.lease_id.
	LeaseID  string
	Redirect string
	// WrapInfo describes the wrapping token when the response was wrapped
	// (response.wrap_info); Data and Auth are then empty, as the client
	// saw them.
	WrapInfo *WrapInfo
	// Error is the error returned to the client, if any.
	Error string
}

// WrapInfo is a response-wrapping token as the client received it. Token
// is always written as an HMAC (unless LogRaw); Accessor and
// WrappedAccessor like every accessor.
type WrapInfo struct {
	Token    string
	Accessor string
	// TTL is written in seconds.
	TTL          time.Duration
	CreationTime time.Time
	CreationPath string
	// WrappedAccessor is the accessor of the token (or AppRole secret ID)
	// inside the wrapped response, "" when there is none.
	WrappedAccessor string
}

// Event is one entry handed to a device: a request or a response, and the
// time the broker stamped on it (every device of one broker writes the same
// time for the same entry).
type Event struct {
	Time time.Time
	// Exactly one of Request and Response is set.
	Request  *Request
	Response *Response
}
