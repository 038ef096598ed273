// Command funclen lists the functions longer than -max lines (default
// internal/funclen.MaxLines, 80) in the given package directories, test
// files left out; exit status 1 when there are any.
//
//	go run ./scripts/funclen sample remediate agent
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/sockwarden/sockwarden/internal/funclen"
)

func main() {
	max := flag.Int("max", funclen.MaxLines, "longest function allowed, in lines")
	flag.Parse()
	found := false
	for _, dir := range flag.Args() {
		long, err := funclen.Long(dir, *max)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for _, f := range long {
			fmt.Println(f)
			found = true
		}
	}
	if found {
		os.Exit(1)
	}
}
