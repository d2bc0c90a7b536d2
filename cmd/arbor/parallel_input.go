package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"unicode"
)

// maxRecord bounds one input record (a line, by default): longer input is
// an error that names the source, never an unbounded allocation.
const maxRecord = 256 << 20

// recordReader reads one source's records, split at a delimiter
// (newline unless -0 or -d say otherwise), as they arrive: a job can start
// on the first line of stdin while the rest is still being written.
type recordReader struct {
	name      string
	sc        *bufio.Scanner
	eof       *string // -E: a record equal to it ends the source
	skipEmpty bool    // -r
	ended     bool
}

func newRecordReader(name string, r io.Reader, c *parallelConfig) *recordReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxRecord)
	delim := c.delim
	if delim == nil {
		delim = []byte{'\n'}
	}
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.Index(data, delim); i >= 0 {
			return i + len(delim), data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	return &recordReader{name: name, sc: sc, eof: c.eofStr, skipEmpty: c.skipEmpty}
}

// next returns the next record, or ok false at the end of the source.
func (r *recordReader) next() (rec string, ok bool, err error) {
	for !r.ended && r.sc.Scan() {
		rec = r.sc.Text()
		if r.eof != nil && rec == *r.eof {
			r.ended = true
			break
		}
		if r.skipEmpty && strings.TrimFunc(rec, unicode.IsSpace) == "" {
			continue
		}
		return rec, true, nil
	}
	r.ended = true
	if err := r.sc.Err(); err != nil {
		return "", false, fmt.Errorf("reading inputs from %s: %w", r.name, err)
	}
	return "", false, nil
}

// source is one input source, open.
type source struct {
	reader *recordReader
}

func (s *source) next() (string, bool, error) { return s.reader.next() }

// inputs turns the input sources into records, the argument tuples jobs are
// made of: one value per source (per column, with --colsep), in GNU
// parallel's order. Several sources combine as a cartesian product, the
// first varying slowest; linked sources (:::+, --link) advance together.
// The first source is streamed; the others are read whole first, as the
// product needs them again for every record of the first.
type inputs struct {
	colsep  *regexp.Regexp // --colsep, or nil
	trim    string         // --trim
	names   map[string]int // --header: column name to position (0-based)
	first   func() ([]string, bool, error)
	rest    [][][]string // the other groups' tuples, read whole
	current []string     // the first group's tuple being combined
	odo     []int        // the position in each of rest
	closers []io.Closer
	pending [][]string // records read ahead and given back
	ended   bool       // the first group has run out: no more records
}

// openInputs opens the sources of c; with none, stdin is the one source.
func openInputs(c *parallelConfig, stdin io.Reader) (*inputs, error) {
	in := &inputs{colsep: c.colsep, trim: c.trim, names: map[string]int{}}
	specs := c.sources
	if len(specs) == 0 {
		specs = []sourceSpec{{file: "-"}}
	}
	if err := in.open(specs, c, stdin); err != nil {
		in.close()
		return nil, err
	}
	return in, nil
}

// open opens every source, reads the header of each with --header, and
// combines them, grouped as they are linked.
func (in *inputs) open(specs []sourceSpec, c *parallelConfig, stdin io.Reader) error {
	var open []*source
	for _, sp := range specs {
		s, err := in.openSource(sp, c, stdin)
		if err != nil {
			return err
		}
		open = append(open, s)
	}
	if c.header {
		if err := in.readHeaders(open); err != nil {
			return err
		}
	}
	// Group the sources: a linked source joins the group before it;
	// --link makes one group of all.
	var groups [][]*source
	for i, s := range open {
		if i == 0 || !(specs[i].linked || c.link) {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], s)
	}
	return in.combine(groups, c.link)
}

// openSource opens one source: a ::: list, stdin, or a file, which
// in.close closes.
func (in *inputs) openSource(sp sourceSpec, c *parallelConfig, stdin io.Reader) (*source, error) {
	switch {
	case sp.isList:
		// GNU parallel reads a ::: list as it reads a file, one value a
		// record: -d, -E, -r and a newline inside a value apply too.
		delim := c.delim
		if delim == nil {
			delim = []byte{'\n'}
		}
		var b bytes.Buffer
		for _, v := range sp.list {
			b.WriteString(v)
			b.Write(delim)
		}
		return &source{reader: newRecordReader(":::", &b, c)}, nil
	case sp.file == "-":
		return &source{reader: newRecordReader("stdin", stdin, c)}, nil
	}
	f, err := os.Open(sp.file)
	if err != nil {
		return nil, fmt.Errorf("input source: %w", err)
	}
	in.closers = append(in.closers, f)
	return &source{reader: newRecordReader(sp.file, f, c)}, nil
}

// readHeaders takes the first record of each source as the names of its
// columns (--header), numbered on from the columns of the sources before.
func (in *inputs) readHeaders(open []*source) error {
	offset := 0
	for _, s := range open {
		rec, ok, err := s.next()
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		cols := in.split(rec)
		for j, name := range cols {
			if _, dup := in.names[name]; !dup {
				in.names[name] = offset + j
			}
		}
		offset += len(cols)
	}
	return nil
}

// combine sets up the product of the groups of sources: the first group is
// streamed if it is one source, the others are read whole.
func (in *inputs) combine(groups [][]*source, wrap bool) error {
	if len(groups[0]) == 1 {
		s := groups[0][0]
		in.first = func() ([]string, bool, error) {
			rec, ok, err := s.next()
			if !ok {
				return nil, ok, err
			}
			return in.split(rec), true, nil
		}
	} else {
		tuples, err := in.readGroup(groups[0], wrap)
		if err != nil {
			return err
		}
		i := 0
		in.first = func() ([]string, bool, error) {
			if i == len(tuples) {
				return nil, false, nil
			}
			i++
			return tuples[i-1], true, nil
		}
	}
	for _, g := range groups[1:] {
		tuples, err := in.readGroup(g, wrap)
		if err != nil {
			return err
		}
		in.rest = append(in.rest, tuples)
	}
	in.odo = make([]int, len(in.rest))
	return nil
}

// readGroup reads linked sources whole into tuples: as many as the shortest
// has, or with wrap (--link) as many as the longest, the shorter ones
// starting over.
func (in *inputs) readGroup(g []*source, wrap bool) ([][]string, error) {
	cols := make([][][]string, len(g))
	n := -1
	for i, s := range g {
		for {
			rec, ok, err := s.next()
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			cols[i] = append(cols[i], in.split(rec))
		}
		switch {
		case n < 0:
			n = len(cols[i])
		case wrap:
			n = max(n, len(cols[i]))
		default:
			n = min(n, len(cols[i]))
		}
	}
	var tuples [][]string
	for k := 0; k < n; k++ {
		var t []string
		for _, c := range cols {
			if len(c) == 0 {
				return nil, nil // an empty source makes no jobs
			}
			t = append(t, c[k%len(c)]...)
		}
		tuples = append(tuples, t)
	}
	return tuples, nil
}

// split makes a record's values: its columns with --colsep, else itself,
// trimmed as --trim says.
func (in *inputs) split(rec string) []string {
	vals := []string{rec}
	if in.colsep != nil {
		vals = in.colsep.Split(rec, -1)
	}
	if in.trim != "" {
		for i, v := range vals {
			if strings.Contains(in.trim, "l") {
				v = strings.TrimLeft(v, " \t\n\r")
			}
			if strings.Contains(in.trim, "r") {
				v = strings.TrimRight(v, " \t\n\r")
			}
			vals[i] = v
		}
	}
	return vals
}

// next returns the next record: the current tuple of the first group
// followed by one tuple of each other group.
func (in *inputs) next() ([]string, bool, error) {
	if n := len(in.pending); n > 0 {
		r := in.pending[n-1]
		in.pending = in.pending[:n-1]
		return r, true, nil
	}
	if in.ended {
		return nil, false, nil
	}
	for _, r := range in.rest {
		if len(r) == 0 {
			return nil, false, nil
		}
	}
	if in.current == nil || in.advance() {
		t, ok, err := in.first()
		if !ok {
			in.ended = true
			return nil, false, err
		}
		in.current = t
		for i := range in.odo {
			in.odo[i] = 0
		}
	}
	rec := append([]string(nil), in.current...)
	for i, r := range in.rest {
		rec = append(rec, r[in.odo[i]]...)
	}
	return rec, true, nil
}

// advance steps the odometer over the other groups; it reports whether it
// wrapped, which means the first group's next tuple is due.
func (in *inputs) advance() bool {
	if in.current == nil {
		return true
	}
	for i := len(in.odo) - 1; i >= 0; i-- {
		in.odo[i]++
		if in.odo[i] < len(in.rest[i]) {
			return false
		}
		in.odo[i] = 0
	}
	return true
}

// unget gives a record back, to be returned by the next call of next.
func (in *inputs) unget(rec []string) { in.pending = append(in.pending, rec) }

func (in *inputs) close() {
	for _, c := range in.closers {
		c.Close()
	}
}
