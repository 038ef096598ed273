package bpfiter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// A minimal reader of the kernel's BTF (/sys/kernel/btf/vmlinux), for the
// two iterators: they need the type ids of two functions and the offsets
// of 26 fields, not the 150,000 decoded types a general BTF library builds
// (cilium/ebpf's btf.LoadKernelSpec took 20 to 35 ms and 10 MiB here, as
// much as the iteration itself; this scan takes about 2 ms and allocates
// an id-to-offset table of one entry per 32 types). Format: Documentation/bpf/btf.rst.

// BTF kinds (BTF_KIND_*).
const (
	btfKindInt      = 1
	btfKindPtr      = 2
	btfKindArray    = 3
	btfKindStruct   = 4
	btfKindUnion    = 5
	btfKindEnum     = 6
	btfKindFwd      = 7
	btfKindTypedef  = 8
	btfKindVolatile = 9
	btfKindConst    = 10
	btfKindRestrict = 11
	btfKindFunc     = 12
	btfKindFuncProt = 13
	btfKindVar      = 14
	btfKindDatasec  = 15
	btfKindFloat    = 16
	btfKindDeclTag  = 17
	btfKindTypeTag  = 18
	btfKindEnum64   = 19
)

var errBTF = errors.New("kernel BTF")

// btfTypes indexes the type section of one BTF blob.
type btfTypes struct {
	big   bool   // a big-endian blob (the kernel's own byte order)
	types []byte // the type section
	strs  []byte // the string section
	// marks[k] is the offset in types of type id k*markEvery+1 (id 0 is
	// void); offset walks from the nearest mark. A full id-to-offset
	// table was 534 KB for this kernel's types: about 130 fresh pages,
	// each a page fault, and faults cost 6-17 us on a VM
	// (docs/PERFORMANCE.md, session 7).
	marks []uint32
	n     int // the number of types
	// found[i] is the id of the type want[i] given to indexBTF.
	found []uint32
}

// readKernelBTF maps (or, where sysfs cannot map it, reads) the running
// kernel's BTF and indexes it, finding the types of want on the way
// (btfTypes.found: 0 for a type the kernel lacks). release unmaps it: the
// types must not be used after.
func readKernelBTF(want ...btfName) (t *btfTypes, release func(), err error) {
	const path = "/sys/kernel/btf/vmlinux"
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBTF, err)
	}
	defer f.Close()
	release = func() {}
	var b []byte
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		// MAP_POPULATE maps the pages in one call: the index reads all
		// of them, and 1,300 page faults one at a time cost more.
		if m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_POPULATE); err == nil {
			b, release = m, func() { unix.Munmap(m) }
		}
	}
	if b == nil {
		if b, err = io.ReadAll(f); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", errBTF, path, err)
		}
	}
	if t, err = indexBTF(b, want...); err != nil {
		release()
		return nil, nil, err
	}
	return t, release, nil
}

// indexBTF checks the header and indexes every type, bounds-checked: a
// truncated or foreign blob is an error, never a panic. The types of want
// (functions and structs) are found in the same pass (btfTypes.found, 0
// for one the blob lacks), each exactly once: a second pass to find them
// cost as much as the index.
func indexBTF(b []byte, want ...btfName) (*btfTypes, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("%w: %d bytes is shorter than a header", errBTF, len(b))
	}
	var bo binary.ByteOrder
	switch {
	case binary.LittleEndian.Uint16(b) == 0xeB9F:
		bo = binary.LittleEndian
	case binary.BigEndian.Uint16(b) == 0xeB9F:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%w: bad magic %#x", errBTF, b[:2])
	}
	if b[2] != 1 {
		return nil, fmt.Errorf("%w: version %d, want 1", errBTF, b[2])
	}
	hdrLen := uint64(bo.Uint32(b[4:]))
	typeOff, typeLen := uint64(bo.Uint32(b[8:])), uint64(bo.Uint32(b[12:]))
	strOff, strLen := uint64(bo.Uint32(b[16:])), uint64(bo.Uint32(b[20:]))
	if hdrLen < 24 || hdrLen+typeOff+typeLen > uint64(len(b)) || hdrLen+strOff+strLen > uint64(len(b)) {
		return nil, fmt.Errorf("%w: sections out of bounds (%d bytes)", errBTF, len(b))
	}
	t := &btfTypes{
		big:   bo == binary.BigEndian,
		types: b[hdrLen+typeOff : hdrLen+typeOff+typeLen],
		strs:  b[hdrLen+strOff : hdrLen+strOff+strLen],
		marks: make([]uint32, 0, typeLen/24/markEvery+1),
		found: make([]uint32, len(want)),
	}
	prefixes := wantPrefixes(want)
	for off := 0; off < len(t.types); {
		if off+12 > len(t.types) {
			return nil, fmt.Errorf("%w: type %d truncated", errBTF, t.n+1)
		}
		info := t.u32(t.types[off+4:])
		kind := (info >> 24) & 0x1f
		extra, ok := trailer(info)
		if !ok {
			return nil, fmt.Errorf("%w: type %d has unknown kind %d", errBTF, t.n+1, kind)
		}
		if t.n%markEvery == 0 {
			t.marks = append(t.marks, uint32(off))
		}
		t.n++
		if (kind == btfKindFunc || kind == btfKindStruct) && len(want) > 0 {
			if err := t.match(want, prefixes, t.found, kind, uint32(off), uint32(t.n)); err != nil {
				return nil, err
			}
		}
		off += 12 + extra
		if off > len(t.types) {
			return nil, fmt.Errorf("%w: type %d truncated", errBTF, t.n)
		}
	}
	return t, nil
}

// markEvery is the spacing of btfTypes.marks: a lookup walks at most 31
// types, and only ~60 lookups are made.
const markEvery = 32

// trailer returns how many bytes follow the 12-byte header of a type with
// this info word; ok is false for an unknown kind.
func trailer(info uint32) (extra int, ok bool) {
	vlen := int(info & 0xffff)
	switch (info >> 24) & 0x1f {
	case btfKindInt, btfKindVar, btfKindDeclTag:
		return 4, true
	case btfKindArray:
		return 12, true
	case btfKindStruct, btfKindUnion, btfKindDatasec, btfKindEnum64:
		return 12 * vlen, true
	case btfKindEnum, btfKindFuncProt:
		return 8 * vlen, true
	case btfKindPtr, btfKindFwd, btfKindTypedef, btfKindVolatile, btfKindConst,
		btfKindRestrict, btfKindFunc, btfKindFloat, btfKindTypeTag:
		return 0, true
	}
	return 0, false
}

// offset returns where type id (1..n) starts in types. indexBTF checked
// every record, so the walk cannot fail.
func (t *btfTypes) offset(id uint32) uint32 {
	i := int(id - 1)
	off := t.marks[i/markEvery]
	for range i % markEvery {
		extra, _ := trailer(t.u32(t.types[off+4:]))
		off += 12 + uint32(extra)
	}
	return off
}

// u32 reads a 32-bit field. A bool and two inlined calls, not a
// binary.ByteOrder: an interface call per field cost a third of the scan
// of 125,000 types.
func (t *btfTypes) u32(b []byte) uint32 {
	if t.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// header returns the kind, vlen, kind_flag and size/type field of type id
// (1-based).
func (t *btfTypes) header(id uint32) (kind uint32, vlen int, kflag bool, sizeType uint32, err error) {
	if id == 0 || int(id) > t.n {
		return 0, 0, false, 0, fmt.Errorf("%w: no type id %d", errBTF, id)
	}
	b := t.types[t.offset(id):]
	info := t.u32(b[4:])
	return (info >> 24) & 0x1f, int(info & 0xffff), info>>31 == 1, t.u32(b[8:]), nil
}

// nameIs compares the NUL-terminated string at off with name.
func (t *btfTypes) nameIs(off uint32, name string) bool {
	end := uint64(off) + uint64(len(name))
	return end < uint64(len(t.strs)) && t.strs[end] == 0 && string(t.strs[off:end]) == name
}

// btfName is a type to look for: its kind and name.
type btfName struct {
	kind uint32
	name string
}

// match records in found the id of the type at off when want names it.
// prefixes, from wantPrefixes(want), lets most names through with one
// bit test: comparing every struct's and function's name with each
// wanted name in turn was 40 % of the pass (BenchmarkResolveIters, 19
// names).
func (t *btfTypes) match(want []btfName, prefixes *namePrefixes, found []uint32, kind, off, id uint32) error {
	nameOff := t.u32(t.types[off:])
	if !prefixes.has(t.strs, nameOff) {
		return nil
	}
	for j, w := range want {
		if w.kind != kind || !t.nameIs(nameOff, w.name) {
			continue
		}
		if found[j] != 0 {
			return fmt.Errorf("%w: two types named %s", errBTF, w.name)
		}
		found[j] = id
	}
	return nil
}

// namePrefixes is the set of the first two bytes of wanted names.
type namePrefixes [1 << 16 / 64]uint64

func wantPrefixes(want []btfName) *namePrefixes {
	var p namePrefixes
	for _, w := range want {
		if len(w.name) < 2 {
			for i := range p {
				p[i] = ^uint64(0) // a one-letter name: no filter
			}
			break
		}
		k := uint16(w.name[0])<<8 | uint16(w.name[1])
		p[k/64] |= 1 << (k % 64)
	}
	return &p
}

// has says whether the string at off may be a wanted name.
func (p *namePrefixes) has(strs []byte, off uint32) bool {
	if uint64(off)+2 > uint64(len(strs)) {
		return false
	}
	k := uint16(strs[off])<<8 | uint16(strs[off+1])
	return p[k/64]&(1<<(k%64)) != 0
}

// field returns the byte offset and size of a member of struct id,
// looking into anonymous structs and unions as C does.
func (t *btfTypes) field(id uint32, member string) (off, size uint32, err error) {
	off, typ, ok, err := t.member(id, member, 0)
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, fmt.Errorf("%w: type %d has no field %s", errBTF, id, member)
	}
	if size, err = t.sizeOf(typ); err != nil {
		return 0, 0, fmt.Errorf("%w (field %s)", err, member)
	}
	return off, size, nil
}

func (t *btfTypes) member(id uint32, name string, depth int) (off, typ uint32, ok bool, err error) {
	if depth > 8 {
		return 0, 0, false, fmt.Errorf("%w: anonymous members nested too deep", errBTF)
	}
	kind, vlen, kflag, _, err := t.header(id)
	if err != nil {
		return 0, 0, false, err
	}
	if kind != btfKindStruct && kind != btfKindUnion {
		return 0, 0, false, nil
	}
	ms := t.types[t.offset(id)+12:]
	bitOff := func(i int) uint32 {
		o := t.u32(ms[12*i+8:])
		if kflag {
			o &= 0xffffff
		}
		return o
	}
	for i := range vlen {
		if t.nameIs(t.u32(ms[12*i:]), name) {
			o := bitOff(i)
			if o%8 != 0 {
				return 0, 0, false, fmt.Errorf("%w: field %s is a bit field", errBTF, name)
			}
			return o / 8, t.u32(ms[12*i+4:]), true, nil
		}
	}
	for i := range vlen {
		if t.u32(ms[12*i:]) != 0 {
			continue
		}
		inner, err := t.resolve(t.u32(ms[12*i+4:]))
		if err != nil {
			return 0, 0, false, err
		}
		o, typ, ok, err := t.member(inner, name, depth+1)
		if err != nil || ok {
			return bitOff(i)/8 + o, typ, ok, err
		}
	}
	return 0, 0, false, nil
}

// resolve skips typedefs and qualifiers.
func (t *btfTypes) resolve(id uint32) (uint32, error) {
	for range 16 {
		kind, _, _, next, err := t.header(id)
		if err != nil {
			return 0, err
		}
		switch kind {
		case btfKindTypedef, btfKindVolatile, btfKindConst, btfKindRestrict, btfKindTypeTag:
			id = next
		default:
			return id, nil
		}
	}
	return 0, fmt.Errorf("%w: typedef chain too long at type %d", errBTF, id)
}

// sizeOf returns the size in bytes of a scalar, pointer, struct or union
// type.
func (t *btfTypes) sizeOf(id uint32) (uint32, error) {
	id, err := t.resolve(id)
	if err != nil {
		return 0, err
	}
	kind, _, _, size, err := t.header(id)
	if err != nil {
		return 0, err
	}
	switch kind {
	case btfKindInt, btfKindEnum, btfKindEnum64, btfKindStruct, btfKindUnion:
		return size, nil
	case btfKindPtr:
		return 8, nil
	}
	return 0, fmt.Errorf("%w: type %d (kind %d) is not a scalar, a pointer or a struct", errBTF, id, kind)
}

// btfField is a field an iterator program reads, with the size its load
// assumes.
type btfField struct {
	typ, field string
	size       uint32
}

// iterBTF is what the kernel's BTF says of one iterator program: the BTF
// id of its attach function and the offset and size of each of its
// fields, or why they cannot be had.
type iterBTF struct {
	target      uint32
	offs, sizes []uint32
	err         error
}

// displacements checks the kernel's fields against what the program
// assumes (fields: the program's table, in the order resolveIters was
// given it) and returns the offsets as the program's int16 displacements,
// each at most limit. A field of size 0 is one the program reaches through
// a pointer the kernel's casting helpers return: it must be at offset 0
// and gets no displacement, so such fields come last in the table.
func (r iterBTF) displacements(fields []btfField, limit uint32) ([]int16, error) {
	offs := make([]int16, 0, len(fields))
	for i, f := range fields {
		off, size := r.offs[i], r.sizes[i]
		if f.size == 0 {
			if off != 0 {
				return nil, fmt.Errorf("%w: %s.%s is at %d, want 0", errBTF, f.typ, f.field, off)
			}
			continue
		}
		if size != f.size || off > limit {
			return nil, fmt.Errorf("%w: %s.%s is %d bytes at %d, want %d bytes", errBTF, f.typ, f.field, size, off, f.size)
		}
		offs = append(offs, int16(off))
	}
	return offs, nil
}

// itersBTF returns both programs' offsets, read in one pass over the
// kernel's BTF: the first iterator a process loads pays for the pass
// (about 6 ms), the second finds its offsets ready.
var itersBTF = sync.OnceValues(func() (owner, tcp iterBTF) {
	r := resolveIters([]string{"bpf_iter_task_file", "bpf_iter_tcp"}, ownerIterFields, tcpIterFields)
	return r[0], r[1]
})

// resolveIters finds, in one pass over the kernel's BTF, the attach
// function targets[i] and the fields fields[i] of each program i. A type
// missing fails only the programs that need it.
func resolveIters(targets []string, fields ...[]btfField) []iterBTF {
	var want []btfName
	need := func(n btfName) {
		if !slices.Contains(want, n) {
			want = append(want, n)
		}
	}
	for i, t := range targets {
		need(btfName{btfKindFunc, t})
		for _, f := range fields[i] {
			need(btfName{btfKindStruct, f.typ})
		}
	}
	out := make([]iterBTF, len(targets))
	spec, release, err := readKernelBTF(want...)
	if err != nil {
		for i := range out {
			out[i].err = err
		}
		return out
	}
	defer release()
	id := func(n btfName) (uint32, error) {
		if id := spec.found[slices.Index(want, n)]; id != 0 {
			return id, nil
		}
		return 0, fmt.Errorf("%w: no type %s", errBTF, n.name)
	}
	for i, t := range targets {
		r := &out[i]
		if r.target, r.err = id(btfName{btfKindFunc, t}); r.err != nil {
			continue
		}
		for _, f := range fields[i] {
			sid, err := id(btfName{btfKindStruct, f.typ})
			if err != nil {
				r.err = err
				break
			}
			off, size, err := spec.field(sid, f.field)
			if err != nil {
				r.err = fmt.Errorf("%s.%s: %w", f.typ, f.field, err)
				break
			}
			r.offs, r.sizes = append(r.offs, off), append(r.sizes, size)
		}
	}
	return out
}
