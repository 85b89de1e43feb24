package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version, when set at build time (-ldflags "-X main.version=v1.2.3"),
// names the release; otherwise the build info's module version is used.
var version = ""

// buildVersion is what this binary knows about its own build, read from
// runtime/debug.ReadBuildInfo: the main module's path and version ("(devel)"
// for a build from a checkout, vX.Y.Z for `go install ...@vX.Y.Z`) and the
// VCS revision that `go build` stamps (absent with -buildvcs=false or
// outside a checkout).
type buildVersion struct {
	module, modVersion  string
	revision, committed string
	modified            bool
	goVersion           string
}

func readBuildVersion() buildVersion {
	v := buildVersion{goVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.module, v.modVersion, v.goVersion = bi.Main.Path, bi.Main.Version, bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.revision = s.Value
		case "vcs.time":
			v.committed = s.Value
		case "vcs.modified":
			v.modified = s.Value == "true"
		}
	}
	return v
}

// short is the one-word version the server reports in its log and in
// rewardpool_build_info: the release, else the module version, else the
// revision of a development build.
func (v buildVersion) short() string {
	switch {
	case version != "":
		return version
	case v.modVersion != "" && v.modVersion != "(devel)":
		return v.modVersion
	case v.revision != "":
		s := "devel+" + v.revision[:min(12, len(v.revision))]
		if v.modified {
			s += "-modified"
		}
		return s
	}
	return "devel"
}

func (v buildVersion) write(w io.Writer) {
	fmt.Fprintf(w, "rewardpool %s\n", v.short())
	mod, modVersion := v.module, v.modVersion
	if mod == "" {
		mod, modVersion = "unknown", "(no build information)"
	}
	fmt.Fprintf(w, "module    %s %s\n", mod, modVersion)
	switch {
	case v.revision == "":
		fmt.Fprintln(w, "revision  unknown (built without VCS information, e.g. -buildvcs=false)")
	case v.modified:
		fmt.Fprintf(w, "revision  %s (with uncommitted changes)\n", v.revision)
	default:
		fmt.Fprintf(w, "revision  %s\n", v.revision)
	}
	if v.committed != "" {
		fmt.Fprintf(w, "committed %s\n", v.committed)
	}
	fmt.Fprintf(w, "go        %s\n", v.goVersion)
}

func runVersion(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rewardpool version\n\n"+
			"Prints the release or module version, the VCS revision and the Go version\nthis binary was built from. It takes no flags.\n")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	readBuildVersion().write(stdout)
	return nil
}
