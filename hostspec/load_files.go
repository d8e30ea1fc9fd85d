package hostspec

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"sync"
)

// readFleet reads and decodes fleet.yaml first: its limits apply to
// every file read after it.
func (l *loader) readFleet(ceilings Limits) []*source {
	var sources []*source
	var fleetLimits limitsDoc
	if data, err := l.readYAML(FleetFile); err == nil {
		s := &source{file: FleetFile, wantKind: KindFleet, data: data, decoded: true}
		s.doc, s.errs = decodeFile(s.file, s.data, s.wantKind)
		if doc, ok := s.doc.(*fleetDoc); ok {
			fleetLimits = doc.limits
		}
		sources = append(sources, s)
	} else if errors.Is(err, fs.ErrNotExist) {
		l.errs = append(l.errs, &Error{File: FleetFile, Msg: "missing: a fleet repository needs fleet.yaml (kind: Fleet) at its root"})
	}
	l.limits = newEffectiveLimits(fleetLimits, ceilings)
	return sources
}

// readYAML reads a document file, recording problems; a missing file is
// returned as fs.ErrNotExist without a problem (the caller decides).
func (l *loader) readYAML(name string) ([]byte, error) {
	data, e, err := l.rfs.readFile(name, "documentSize")
	if err == nil && e.path != name {
		l.viaLink = true
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errSymlinkEscapes) {
			return nil, err
		}
		if e, ok := l.limitProblem(name, Source{}, "", name, err); ok {
			l.addLimitProblem(e)
			return nil, err
		}
		l.errs = append(l.errs, &Error{File: name, Msg: "cannot read: " + problem(err)})
		return nil, err
	}
	return data, nil
}

// yamlFiles lists the *.yaml files under dir, recursively, sorted. A
// missing directory is fine. *.yml files are refused rather than silently
// ignored.
func (l *loader) yamlFiles(dir string) ([]string, error) {
	e, err := l.rfs.real(dir)
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errSymlinkEscapes) {
		return nil, nil
	}
	if err != nil {
		l.errs = append(l.errs, &Error{File: dir, Msg: "cannot read: " + problem(err)})
		return nil, nil
	}
	if !e.mode.IsDir() {
		l.errs = append(l.errs, &Error{File: dir, Msg: "must be a directory of *.yaml files"})
		return nil, nil
	}
	var out []string
	var walk func(dir string) error
	walk = func(dir string) error {
		if err := l.ctx.Err(); err != nil {
			return fmt.Errorf("load fleet repository: %w", err)
		}
		real, err := l.rfs.real(dir)
		if err != nil {
			l.errs = append(l.errs, &Error{File: dir, Msg: "cannot read: " + problem(err)})
			return nil
		}
		if real.path != dir {
			l.viaLink = true
		}
		entries, err := fs.ReadDir(l.rfs.fsys, real.path)
		if err != nil {
			l.errs = append(l.errs, &Error{File: dir, Msg: "cannot list: " + problem(err)})
			return nil
		}
		for _, de := range entries {
			name := path.Join(dir, de.Name())
			if de.Type()&(fs.ModeSymlink|fs.ModeIrregular) == 0 {
				l.rfs.listed(name, real, de)
			}
			switch {
			case de.Type()&fs.ModeIrregular != 0:
				// A submodule or mount point: report it rather than skip
				// hosts or groups that a reviewer would expect to count.
				_, err := fs.Lstat(l.rfs.fsys, path.Join(real.path, de.Name()))
				if err == nil {
					err = &fs.PathError{Op: "lstat", Path: name, Err: errors.New("is a special file")}
				}
				l.errs = append(l.errs, &Error{File: name, Msg: "cannot read: " + problem(err)})
			case de.IsDir():
				if err := walk(name); err != nil {
					return err
				}
			case strings.HasSuffix(de.Name(), ".yaml"):
				if de.Type()&fs.ModeSymlink != 0 {
					l.viaLink = true
				}
				out = append(out, name)
			case strings.HasSuffix(de.Name(), ".yml"):
				l.errs = append(l.errs, &Error{File: name, Msg: "rename to .yaml: only *.yaml files are read"})
			}
		}
		return nil
	}
	return out, walk(dir)
}

// decodeAll decodes the sources in parallel: decoding is pure CPU work,
// while reading stays sequential (not every fs.FS is safe for concurrent
// use).
func (l *loader) decodeAll(sources []*source) error {
	workers := min(runtime.GOMAXPROCS(0), 1+len(sources)/64)
	var wg sync.WaitGroup
	next := make(chan *source)
	for range workers {
		wg.Go(func() {
			for s := range next {
				s.doc, s.errs = l.rfs.cache.decode(s)
			}
		})
	}
	var err error
	for _, s := range sources {
		if err = l.ctx.Err(); err != nil {
			break
		}
		if s.decoded {
			continue
		}
		next <- s
	}
	close(next)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("load fleet repository: %w", err)
	}
	return nil
}
