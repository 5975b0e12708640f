package main

import (
	"flag"
	"fmt"
	"strings"
)

// helpText renders a command's help: the usage text, then its flags grouped
// as the Vault CLI groups them (HTTP, output, command options).
func helpText(usage string, fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(usage))
	b.WriteString("\n")
	if fs == nil {
		return b.String()
	}
	var httpFlags, outFlags, cmdFlags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		switch {
		case httpFlagNames[f.Name]:
			httpFlags = append(httpFlags, f)
		case outputFlagNames[f.Name]:
			outFlags = append(outFlags, f)
		default:
			cmdFlags = append(cmdFlags, f)
		}
	})
	section := func(title string, flags []*flag.Flag) {
		if len(flags) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s:\n", title)
		for _, f := range flags {
			name, usage := flag.UnquoteUsage(f)
			switch f.Value.(type) {
			case *durationFlag:
				name = "duration"
			case *mapFlag:
				name = "key=value"
			case *listFlag:
				name = "string"
			}
			arg := "=<" + name + ">"
			if isBoolFlag(f) {
				arg = ""
			}
			fmt.Fprintf(&b, "\n  -%s%s\n", f.Name, arg)
			for _, l := range wrapWords(usage, 72) {
				fmt.Fprintf(&b, "      %s\n", l)
			}
		}
	}
	section("Command Options", cmdFlags)
	section("Output Options", outFlags)
	section("HTTP Options", httpFlags)
	return b.String()
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// wrapWords splits s into lines of at most width bytes, at spaces.
func wrapWords(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) > width:
			lines = append(lines, line)
			line = w
		default:
			line += " " + w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
