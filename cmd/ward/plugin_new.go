package main

import (
	"bytes"
	"embed"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
)

// scaffold is the plugin module `ward plugin new` writes: a secret engine
// with one path family, its test, a go-plugin main and a WASM main, and a
// Makefile that builds both and runs the conformance suite on them.
//
//go:embed scaffold
var scaffold embed.FS

type pluginNewCommand struct {
	flagType     string
	flagModule   string
	flagWardPath string
	flagDir      string
}

func (c *pluginNewCommand) Synopsis() string { return "Create a new plugin module from a template" }

func (c *pluginNewCommand) Help() string {
	return helpText(`
Usage: ward plugin new [options] NAME

  Writes a new secret engine plugin module in the directory NAME: go.mod,
  a backend with one path family and its test, a main for the go-plugin
  build and one for the WASM build, a Makefile (build, wasm, test,
  conformance) and a README. It passes the conformance suite as written:

      $ ward plugin new -module=example.com/notes notes
      $ cd notes && go mod tidy && make test conformance

  -ward-path builds against a local checkout of Ward (a replace directive)
  instead of the published module.
`, c.flags())
}

func (c *pluginNewCommand) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("plugin new", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.flagType, "type", "secret", `Plugin type; "secret" (auth methods are not scaffolded yet: start from plugins/auth/userpass).`)
	fs.StringVar(&c.flagModule, "module", "", "Go module path (default: example.com/NAME).")
	fs.StringVar(&c.flagWardPath, "ward-path", "", "Path of a local Ward checkout to build against.")
	fs.StringVar(&c.flagDir, "dir", "", "Directory to create (default: NAME).")
	return fs
}

var pluginNameRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

func (c *pluginNewCommand) Run(args []string) int {
	fs := c.flags()
	if err := fs.Parse(args); err != nil {
		printErr("%s", err)
		return exitLocal
	}
	if fs.NArg() != 1 {
		printErr("ward plugin new takes exactly one argument, the plugin name")
		return exitLocal
	}
	name := fs.Arg(0)
	if !pluginNameRe.MatchString(name) {
		printErr("plugin name %q: use lower-case letters, digits and dashes, starting with a letter", name)
		return exitLocal
	}
	if c.flagType != "secret" {
		printErr("only -type=secret is scaffolded; for an auth method start from plugins/auth/userpass in Ward's repository")
		return exitLocal
	}
	dir := c.flagDir
	if dir == "" {
		dir = name
	}
	if _, err := os.Stat(dir); err == nil {
		printErr("%s already exists", dir)
		return exitLocal
	}
	vars := struct{ Name, Module, WardVersion, WardPath string }{
		Name: name, Module: c.flagModule, WardVersion: "v" + strings.TrimPrefix(version, "v"),
	}
	if vars.Module == "" {
		vars.Module = "example.com/" + name
	}
	if c.flagWardPath != "" {
		abs, err := filepath.Abs(c.flagWardPath)
		if err != nil {
			printErr("%s", err)
			return exitLocal
		}
		vars.WardPath = abs
	}
	err := walkScaffold(func(rel string, body []byte) error {
		t, err := template.New(rel).Parse(string(body))
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if err := t.Execute(&out, vars); err != nil {
			return err
		}
		dst := filepath.Join(dir, strings.TrimSuffix(rel, ".tmpl"))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, out.Bytes(), 0o644)
	})
	if err != nil {
		printErr("writing the plugin: %s", err)
		return exitLocal
	}
	writeOut(fmt.Sprintf("Success! Created the %s secret engine in %s/.\nNext: cd %s && go mod tidy && make test conformance\n", name, dir, dir))
	return exitOK
}

// walkScaffold calls f with every template of the scaffold, by relative path.
func walkScaffold(f func(rel string, body []byte) error) error {
	return fs.WalkDir(scaffold, "scaffold", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := scaffold.ReadFile(p)
		if err != nil {
			return err
		}
		return f(strings.TrimPrefix(p, "scaffold/"), body)
	})
}
