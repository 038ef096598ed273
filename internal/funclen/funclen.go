// Package funclen finds long functions, for the size rule of issue 13: no
// function over MaxLines lines in the packages of Enforced, tests aside. A
// long function is where everything ends up happening; the rule keeps each
// one readable in a screen. scripts/funclen prints the same list for any
// package.
package funclen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MaxLines is the longest a function may be, from its func line to its
// closing brace.
const MaxLines = 80

// Enforced lists the packages (directories from the repository's root)
// held to MaxLines by TestFunctionLength.
var Enforced = []string{"sample", "remediate", "agent"}

// Pending lists long functions of Enforced packages that other work was
// changing when the rule came in (package.Func: why it waits). Each must
// shrink and leave the list: TestFunctionLength fails on an entry that
// already fits. It is empty since the sample readers were split (issue
// 13); an entry is a debt with a reason, not a way round the rule.
var Pending = map[string]string{}

// Func is one function declaration and its length.
type Func struct {
	Pos   string // file:line
	Name  string // Recv.Name or Name
	Lines int
}

func (f Func) String() string { return fmt.Sprintf("%s: %s is %d lines", f.Pos, f.Name, f.Lines) }

// Long returns the functions of the Go package in dir (test files left
// out) longer than max lines, longest first.
func Long(dir string, max int) ([]Func, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("funclen: no Go files in %s", dir)
	}
	fset := token.NewFileSet()
	var long []Func
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("funclen: %w", err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
			if n := end.Line - start.Line + 1; n > max {
				long = append(long, Func{Pos: fmt.Sprintf("%s:%d", name, start.Line), Name: funcName(fd), Lines: n})
			}
		}
	}
	sort.SliceStable(long, func(i, j int) bool { return long[i].Lines > long[j].Lines })
	return long, nil
}

func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if g, ok := t.(*ast.IndexExpr); ok { // generic receiver
		t = g.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}
