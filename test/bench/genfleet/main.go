// Command genfleet writes a generated fleet repository for benchmarks:
//
//	go run ./test/bench/genfleet -hosts 10000 -groups 50 -out DIR [-git] [-seed N]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/bootsync/bootsync/test/bench/genfleet/fleetgen"
)

func main() {
	hosts := flag.Int("hosts", 1000, "number of hosts")
	groups := flag.Int("groups", 50, "number of groups")
	seed := flag.Uint64("seed", 1, "random seed; the same seed writes the same repository")
	out := flag.String("out", "", "directory to write (must not exist or be empty)")
	makeGit := flag.Bool("git", false, "also make DIR a Git repository with one commit")
	flag.Parse()
	if err := run(context.Background(), *hosts, *groups, *seed, *out, *makeGit); err != nil {
		fmt.Fprintln(os.Stderr, "genfleet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, hosts, groups int, seed uint64, out string, makeGit bool) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s is not empty", out)
	}
	repo, err := fleetgen.Generate(fleetgen.Config{Hosts: hosts, Groups: groups, Seed: seed})
	if err != nil {
		return err
	}
	if err := repo.WriteDir(out); err != nil {
		return err
	}
	if makeGit {
		if err := fleetgen.CommitGit(ctx, out); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d hosts, %d groups (%d files) to %s\n", hosts, groups, len(repo), out)
	return nil
}
