package main

var authGroup = &groupCommand{
	synopsis: "Interact with auth methods",
	help: `Usage: ward auth <subcommand> [options] [args]

  Enables, disables, lists and tunes auth methods (the mounts under
  sys/auth, routed under auth/). Log in through one with "ward login".

      $ ward auth enable userpass
      $ ward auth list -detailed
`,
}

// authMounts is the mount table of auth methods; the commands are in
// mounts.go.
var authMounts = &mountKind{
	group:   "auth",
	api:     "sys/auth",
	noun:    "auth method",
	nounA:   "an auth method",
	nouns:   "auth methods",
	short:   "method",
	enabled: "Success! Enabled %s auth method at: %s",
	help: map[string]string{
		"enable": `
Usage: ward auth enable [options] TYPE

  Enables an auth method of TYPE at -path (default: TYPE). Its endpoints,
  login included, are then served under auth/PATH/.

      $ ward auth enable userpass
      $ ward auth enable -path=ci -default-lease-ttl=30m approle
`,
		"disable": `
Usage: ward auth disable [options] PATH

  Disables the auth method at PATH. Every token issued through it is
  revoked and its configuration is deleted.
`,
		"list": `
Usage: ward auth list [options]

  Lists the enabled auth methods; -detailed adds TTLs, options and more.
`,
		"tune": `
Usage: ward auth tune [options] PATH

  Changes the configuration of the auth method at PATH; only the flags
  given are changed. The lease TTLs cap the tokens it issues.

      $ ward auth tune -max-lease-ttl=8h userpass
`,
	},
}
