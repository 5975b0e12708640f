package main

var secretsGroup = &groupCommand{
	synopsis: "Interact with secrets engines",
	help: `Usage: ward secrets <subcommand> [options] [args]

  Enables, disables, lists and tunes secrets engines (the mounts under
  sys/mounts).

      $ ward secrets enable -path=secret -version=2 kv
      $ ward secrets list -detailed
`,
}

// secretsMounts is the mount table of secrets engines; the commands are in
// mounts.go.
var secretsMounts = &mountKind{
	group:   "secrets",
	api:     "sys/mounts",
	noun:    "secrets engine",
	nounA:   "a secrets engine",
	nouns:   "secrets engines",
	short:   "engine",
	engine:  true,
	enabled: "Success! Enabled the %s secrets engine at: %s",
	help: map[string]string{
		"enable": `
Usage: ward secrets enable [options] TYPE

  Mounts a secrets engine of TYPE at -path (default: TYPE). "kv-v2" is
  short for "kv" with -version=2.

      $ ward secrets enable -path=secret -version=2 kv
      $ ward secrets enable -default-lease-ttl=1h transit
`,
		"disable": `
Usage: ward secrets disable [options] PATH

  Unmounts the secrets engine at PATH. All its secrets are revoked and its
  data is deleted.
`,
		"list": `
Usage: ward secrets list [options]

  Lists the mounted secrets engines; -detailed adds TTLs, options and more.
`,
		"tune": `
Usage: ward secrets tune [options] PATH

  Changes the configuration of the secrets engine at PATH; only the flags
  given are changed.

      $ ward secrets tune -max-lease-ttl=24h transit
`,
	},
}
