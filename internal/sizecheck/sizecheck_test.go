// Package sizecheck holds the size rule of issue 13 for the packages whose
// refactor has landed: no function over maxLines lines outside tests. A
// long function is where everything ends up happening (Engine.Apply grew
// to 180 lines and ten guards before it became a list of steps).
//
// When internal/funclen (the arch-sample branch) is on main, its Enforced
// list takes these packages and this test goes.
package sizecheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

const maxLines = 80

// enforced are the packages held to maxLines, from the repository root.
var enforced = []string{"remediate"}

func TestFunctionLength(t *testing.T) {
	for _, pkg := range enforced {
		files, err := filepath.Glob(filepath.Join("..", "..", pkg, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", pkg, err)
		}
		fset := token.NewFileSet()
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range af.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok {
					continue
				}
				if n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; n > maxLines {
					t.Errorf("%s: %s is %d lines, over %d: split it by what its parts do", fset.Position(fd.Pos()), fd.Name.Name, n, maxLines)
				}
			}
		}
	}
}
