package sample

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/sockwarden/sockwarden/internal/sysval"
)

// Helpers shared by the parsers of captured text (ss, sysctl, nstat, dmesg).
//
// Every text parser follows the same contract: a line it does not
// understand is noted (and ends up in Sample.Missing), a file that is not
// what its name says or that ends in the middle of a line is an error
// wrapping ErrParse and naming the file and the line.

// maxLine bounds one line of captured text. `ss -tani` lines are a few
// hundred bytes; anything near this is not a capture.
const maxLine = 1 << 20

// lineReader yields the lines of a capture with their numbers and says
// whether the last one was cut (no final newline: a truncated copy).
type lineReader struct {
	br   *bufio.Reader
	name string
	n    int
	// cut is set when the line just returned had no newline at the end
	// of the input.
	cut bool
}

func newLineReader(r io.Reader, name string) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), name: name}
}

// next returns the next line without its newline (and without a trailing
// '\r'), or io.EOF. Other read errors are wrapped with the file and line.
// A line that fits the buffer is copied once, into the string returned: a
// copy into a scratch slice first cost every line of every capture a
// second allocation.
func (lr *lineReader) next() (string, error) {
	var long []byte // a line longer than the buffer, gathered
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if len(long)+len(chunk) > maxLine {
			return "", lr.errf(lr.n+1, "line longer than %d bytes: not a capture", maxLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			// The chunk is valid only until the next read.
			long = append(long, chunk...)
			continue
		}
		if long != nil {
			chunk = append(long, chunk...)
		}
		switch {
		case err == nil:
			lr.n++
			lr.cut = false
			return string(bytes.TrimSuffix(bytes.TrimSuffix(chunk, []byte("\n")), []byte("\r"))), nil
		case errors.Is(err, io.EOF):
			if len(chunk) == 0 {
				return "", io.EOF
			}
			lr.n++
			lr.cut = true
			return string(bytes.TrimSuffix(chunk, []byte("\r"))), nil
		default:
			return "", fmt.Errorf("%w: %s: line %d: %w", ErrParse, lr.name, lr.n+1, err)
		}
	}
}

// errf makes the ErrParse error naming the file and line.
func (lr *lineReader) errf(line int, format string, a ...any) error {
	return fmt.Errorf("%w: %s: line %d: %s", ErrParse, lr.name, line, fmt.Sprintf(format, a...))
}

// truncated is the error for a last line without a newline: every tool
// ends its output with one, so the copy was cut (possibly in the middle of
// a number, which no parse of the line could notice).
func (lr *lineReader) truncated(why string) error {
	return lr.errf(lr.n, "file ends in the middle of a line (truncated copy?): %s; if the file is complete, end it with a newline", why)
}

// notes collects the lines a parser did not understand, keeping the first
// few verbatim and counting the rest, so that a file full of noise does not
// make a sample grow without bound.
type notes struct {
	file  string
	kept  []Missing
	extra int
}

const keptNotes = 5

func (n *notes) add(line int, why, text string) {
	if len(n.kept) >= keptNotes {
		n.extra++
		return
	}
	n.kept = append(n.kept, Missing{
		Source: n.file + ":" + strconv.Itoa(line),
		Reason: fmt.Sprintf("line not understood (%s): %q", why, clip(text, 100)),
	})
}

// list returns what was noted, with a final entry counting the lines that
// were not kept.
func (n *notes) list() []Missing {
	out := append([]Missing(nil), n.kept...)
	if n.extra > 0 {
		out = append(out, Missing{Source: n.file, Reason: fmt.Sprintf("%d more lines not understood", n.extra)})
	}
	return out
}

func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// foldSpace is sysval.Fold: sysctl values are recorded in its normal form
// ("32768\t60999" -> "32768 60999").
func foldSpace(s string) string { return sysval.Fold(s) }
