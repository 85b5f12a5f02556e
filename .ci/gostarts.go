//go:build ignore

// gostarts lists the packages whose non-test code starts goroutines: a
// `go` statement, a time.AfterFunc or context.AfterFunc (the function runs
// on a goroutine of its own), or a call of a method named Go
// (sync.WaitGroup.Go, errgroup.Group.Go). It reads every non-test .go file of each package named on the
// command line as `import/path=dir` (build tags are not applied: a file
// for another system counts too), and prints one import path a line,
// sorted, then, on stderr, where each package starts them. .ci/run runs
// it over `go list ./...` and fails if a package it prints is not in the
// -race list.
//
//	go run .ci/gostarts.go $(go list -f '{{.ImportPath}}={{.Dir}}' ./...)
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

func main() {
	var starters []string
	for _, arg := range os.Args[1:] {
		pkg, dir, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "gostarts: %q is not import/path=dir\n", arg)
			os.Exit(1)
		}
		sites, err := starts(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gostarts: %v\n", err)
			os.Exit(1)
		}
		if len(sites) > 0 {
			starters = append(starters, pkg)
			fmt.Fprintf(os.Stderr, "%s: %d: %s\n", pkg, len(sites), strings.Join(sites, ", "))
		}
	}
	sort.Strings(starters)
	for _, p := range starters {
		fmt.Println(p)
	}
}

// starts returns file:line of every goroutine started in dir's non-test
// files.
func starts(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var sites []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		// What this file calls packages time and context: their
		// AfterFunc starts a goroutine.
		afterFunc := map[string]bool{}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "time" || path == "context" {
				name := path
				if imp.Name != nil {
					name = imp.Name.Name
				}
				afterFunc[name] = true
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			site := ""
			switch n := n.(type) {
			case *ast.GoStmt:
				site = "go"
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					break
				}
				if x, ok := sel.X.(*ast.Ident); ok && sel.Sel.Name == "AfterFunc" && afterFunc[x.Name] {
					site = x.Name + ".AfterFunc"
				} else if sel.Sel.Name == "Go" {
					site = ".Go()"
				}
			}
			if site != "" {
				pos := fset.Position(n.Pos())
				sites = append(sites, fmt.Sprintf("%s:%d %s", filepath.Base(pos.Filename), pos.Line, site))
			}
			return true
		})
	}
	return sites, nil
}
