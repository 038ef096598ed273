package bpfiter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// btfBuilder writes a little-endian BTF blob, type by type, for tests.
type btfBuilder struct {
	types bytes.Buffer
	strs  bytes.Buffer
	n     uint32
}

func newBTFBuilder() *btfBuilder {
	b := &btfBuilder{}
	b.strs.WriteByte(0)
	return b
}

func (b *btfBuilder) str(s string) uint32 {
	if s == "" {
		return 0
	}
	off := uint32(b.strs.Len())
	b.strs.WriteString(s)
	b.strs.WriteByte(0)
	return off
}

func (b *btfBuilder) u32(vs ...uint32) {
	for _, v := range vs {
		binary.Write(&b.types, binary.LittleEndian, v)
	}
}

// typ writes a type header and returns its id.
func (b *btfBuilder) typ(name string, kind, vlen uint32, kflag bool, sizeType uint32) uint32 {
	info := kind<<24 | vlen
	if kflag {
		info |= 1 << 31
	}
	b.u32(b.str(name), info, sizeType)
	b.n++
	return b.n
}

func (b *btfBuilder) intType(name string, size uint32) uint32 {
	id := b.typ(name, btfKindInt, 0, false, size)
	b.u32(size * 8) // encoding, offset, bits
	return id
}

type btfMember struct {
	name   string
	typ    uint32
	bitOff uint32
}

func (b *btfBuilder) composite(kind uint32, name string, size uint32, kflag bool, ms ...btfMember) uint32 {
	id := b.typ(name, kind, uint32(len(ms)), kflag, size)
	for _, m := range ms {
		b.u32(b.str(m.name), m.typ, m.bitOff)
	}
	return id
}

func (b *btfBuilder) bytes() []byte {
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, struct {
		Magic          uint16
		Version, Flags uint8
		HdrLen         uint32
		TypeOff        uint32
		TypeLen        uint32
		StrOff         uint32
		StrLen         uint32
	}{0xeB9F, 1, 0, 24, 0, uint32(b.types.Len()), uint32(b.types.Len()), uint32(b.strs.Len())})
	out.Write(b.types.Bytes())
	out.Write(b.strs.Bytes())
	return out.Bytes()
}

// testBTF mimics the kernel's layout: bpf_iter__task_file with its
// pointers inside anonymous unions (__bpf_md_ptr), a typedef'd field, a
// bit field, a const-qualified pointer, and every kind with a trailer.
func testBTF() []byte {
	b := newBTFBuilder()
	u32 := b.intType("unsigned int", 4)                               // 1
	u64 := b.intType("long unsigned int", 8)                          // 2
	u16 := b.typedefOf("umode_t", b.intType("short unsigned int", 2)) // 3, 4
	task := b.composite(btfKindStruct, "task_struct", 64, false,      // 5
		btfMember{"pid", u32, 0}, btfMember{"tgid", u32, 32 * 8})
	ptask := b.typ("", btfKindPtr, 0, false, task) // 6
	b.typ("", btfKindArray, 0, false, 0)           // 7
	b.u32(u32, u32, 4)
	b.typ("e", btfKindEnum, 2, false, 4) // 8
	b.u32(b.str("A"), 0, b.str("B"), 1)
	b.typ("fp", btfKindFuncProt, 1, false, 0) // 9
	b.u32(0, u32)
	fn := b.typ("bpf_iter_task_file", btfKindFunc, 0, false, 9) // 10
	b.typ("bpf_iter_meta", btfKindFwd, 0, false, 0)             // 11: a forward declaration is not the struct
	union := b.composite(btfKindUnion, "", 8, false, btfMember{"task", ptask, 0}, btfMember{"", u64, 0})
	cptask := b.typ("", btfKindConst, 0, false, ptask)
	union2 := b.composite(btfKindUnion, "", 8, false, btfMember{"file", cptask, 0})
	b.composite(btfKindStruct, "bpf_iter__task_file", 32, true, // kind_flag: offsets carry bit-field sizes
		btfMember{"", union, 8 * 8}, btfMember{"fd", u32, 16 * 8}, btfMember{"flags", u32, 3<<24 | 20*8 + 3}, btfMember{"", union2, 24 * 8})
	b.composite(btfKindStruct, "inode", 128, false, btfMember{"i_mode", u16, 0}, btfMember{"i_ino", u64, 64 * 8})
	b.typ("v", btfKindVar, 0, false, u32)
	b.u32(1)
	b.typ(".data", btfKindDatasec, 1, false, 4)
	b.u32(0, 0, 4)
	b.typ("e64", btfKindEnum64, 1, false, 8)
	b.u32(b.str("C"), 1, 0)
	_ = fn
	return b.bytes()
}

func (b *btfBuilder) typedefOf(name string, id uint32) uint32 {
	return b.typ(name, btfKindTypedef, 0, false, id)
}

func TestParseBTF(t *testing.T) {
	spec, err := parseBTF(testBTF())
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := spec.find(btfKindFunc, "bpf_iter_task_file"); err != nil || ids[0] != 10 {
		t.Errorf("func id: got %v, %v, want 10", ids, err)
	}
	ids, err := spec.find(btfKindStruct, "bpf_iter__task_file", "inode", "task_struct")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id           uint32
		field        string
		off, size    uint32
		wantErrMatch string
	}{
		{id: ids[0], field: "task", off: 8, size: 8},  // in an anonymous union
		{id: ids[0], field: "file", off: 24, size: 8}, // through const
		{id: ids[0], field: "fd", off: 16, size: 4},
		{id: ids[1], field: "i_mode", off: 0, size: 2}, // through a typedef
		{id: ids[1], field: "i_ino", off: 64, size: 8},
		{id: ids[2], field: "tgid", off: 32, size: 4},
		{id: ids[0], field: "flags", wantErrMatch: "bit field"},
		{id: ids[2], field: "comm", wantErrMatch: "no field comm"},
	} {
		off, size, err := spec.field(tc.id, tc.field)
		if tc.wantErrMatch != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrMatch) {
				t.Errorf("%s: got %v, want an error with %q", tc.field, err, tc.wantErrMatch)
			}
			continue
		}
		if err != nil || off != tc.off || size != tc.size {
			t.Errorf("%s: got off %d size %d err %v, want off %d size %d", tc.field, off, size, err, tc.off, tc.size)
		}
	}
	if _, err := spec.find(btfKindStruct, "bpf_iter_meta"); err == nil {
		t.Error("a forward declaration was found as the struct")
	}
}

func TestParseBTFErrors(t *testing.T) {
	good := testBTF()
	dup := newBTFBuilder()
	dup.composite(btfKindStruct, "file", 8, false)
	dup.composite(btfKindStruct, "file", 16, false)
	unknown := newBTFBuilder()
	unknown.typ("x", 31, 0, false, 0)
	for name, in := range map[string][]byte{
		"empty":        nil,
		"bad magic":    append([]byte{0, 0}, good[2:]...),
		"truncated":    good[:len(good)-40],
		"unknown kind": unknown.bytes(),
	} {
		if _, err := parseBTF(in); !errors.Is(err, errBTF) {
			t.Errorf("%s: got %v, want errBTF", name, err)
		}
	}
	spec, err := parseBTF(dup.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spec.find(btfKindStruct, "file"); err == nil || !strings.Contains(err.Error(), "two types named file") {
		t.Errorf("duplicate struct: got %v", err)
	}
}

// TestKernelBTFMatchesCilium reads this kernel's BTF with btf.go and with
// cilium/ebpf's full decoder: the iterator's function id and all nine
// field offsets and sizes must agree.
func TestKernelBTFMatchesCilium(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("no kernel BTF here: %v", err)
	}
	spec, release, err := readKernelBTF()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ref, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var fn *btf.Func
	if err := ref.TypeByName("bpf_iter_task_file", &fn); err != nil {
		t.Fatal(err)
	}
	wantID, err := ref.TypeID(fn)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := spec.find(btfKindFunc, "bpf_iter_task_file"); err != nil || got[0] != uint32(wantID) {
		t.Errorf("bpf_iter_task_file: got id %v (%v), cilium says %d", got, err, wantID)
	}
	for _, f := range ownerIterFields {
		ids, err := spec.find(btfKindStruct, f.typ)
		if err != nil {
			t.Fatal(err)
		}
		off, size, err := spec.field(ids[0], f.field)
		if err != nil {
			t.Errorf("%s.%s: %v", f.typ, f.field, err)
			continue
		}
		var s *btf.Struct
		if err := ref.TypeByName(f.typ, &s); err != nil {
			t.Fatal(err)
		}
		wantOff, ok := memberOffsetRef(s.Members, f.field)
		if !ok {
			t.Fatalf("cilium: %s has no %s", f.typ, f.field)
		}
		if off != wantOff || size != f.size {
			t.Errorf("%s.%s: got off %d size %d, cilium off %d, program loads %d", f.typ, f.field, off, size, wantOff, f.size)
		}
	}
}

// memberOffsetRef finds a field with cilium's types, into anonymous
// members.
func memberOffsetRef(ms []btf.Member, name string) (uint32, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m.Offset.Bytes(), true
		}
	}
	for _, m := range ms {
		if m.Name != "" {
			continue
		}
		var inner []btf.Member
		switch t := btf.UnderlyingType(m.Type).(type) {
		case *btf.Union:
			inner = t.Members
		case *btf.Struct:
			inner = t.Members
		}
		if o, ok := memberOffsetRef(inner, name); ok {
			return m.Offset.Bytes() + o, true
		}
	}
	return 0, false
}

func FuzzParseBTF(f *testing.F) {
	f.Add(testBTF())
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, err := parseBTF(b)
		if err != nil {
			return
		}
		ids, err := spec.find(btfKindStruct, "bpf_iter__task_file", "inode")
		if err != nil {
			return
		}
		for _, id := range ids {
			for _, f := range []string{"task", "file", "fd", "flags", "i_mode", "i_ino", ""} {
				spec.field(id, f)
			}
		}
	})
}

// TestParseBTFWant finds the wanted types while indexing, as the iterator's
// set-up does: the same ids as find, and an error for a missing or a
// twice-named type.
func TestParseBTFWant(t *testing.T) {
	want := []btfName{{btfKindFunc, "bpf_iter_task_file"}, {btfKindStruct, "inode"}, {btfKindStruct, "task_struct"}}
	spec, err := parseBTF(testBTF(), want...)
	if err != nil {
		t.Fatal(err)
	}
	structs, err := spec.find(btfKindStruct, "inode", "task_struct")
	if err != nil {
		t.Fatal(err)
	}
	if got, wantIDs := spec.found, []uint32{10, structs[0], structs[1]}; !slices.Equal(got, wantIDs) {
		t.Errorf("found %v, want %v", got, wantIDs)
	}
	if _, err := parseBTF(testBTF(), btfName{btfKindStruct, "bpf_iter_meta"}); err == nil || !strings.Contains(err.Error(), "no type bpf_iter_meta") {
		t.Errorf("a forward declaration only: got %v, want no type bpf_iter_meta", err)
	}
	dup := newBTFBuilder()
	dup.composite(btfKindStruct, "file", 8, false)
	dup.composite(btfKindStruct, "file", 16, false)
	if _, err := parseBTF(dup.bytes(), btfName{btfKindStruct, "file"}); err == nil || !strings.Contains(err.Error(), "two types named file") {
		t.Errorf("duplicate struct: got %v", err)
	}
}

// BenchmarkResolveIters: one pass over this kernel's BTF for both
// iterator programs, as the first census of a process makes it.
func BenchmarkResolveIters(b *testing.B) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		b.Skip("no kernel BTF")
	}
	for b.Loop() {
		r := resolveIters([]string{"bpf_iter_task_file", "bpf_iter_tcp"}, ownerIterFields, tcpIterFields)
		if r[0].err != nil {
			b.Fatal(r[0].err)
		}
	}
}

// TestDisplacements: both iterators check the kernel's fields through
// iterBTF.displacements; a size-0 field must be at offset 0 and gets no
// displacement.
func TestDisplacements(t *testing.T) {
	fields := []btfField{{"a", "x", 8}, {"a", "y", 2}, {"b", "z", 0}}
	for _, tc := range []struct {
		name  string
		offs  []uint32
		sizes []uint32
		want  []int16
		err   string
	}{
		{"fits", []uint32{0, 40, 0}, []uint32{8, 2, 64}, []int16{0, 40}, ""},
		{"wrong size", []uint32{0, 40, 0}, []uint32{8, 4, 64}, nil, "a.y is 4 bytes at 40, want 2 bytes"},
		{"beyond limit", []uint32{0, 101, 0}, []uint32{8, 2, 64}, nil, "a.y is 2 bytes at 101, want 2 bytes"},
		{"cast field not first", []uint32{0, 40, 8}, []uint32{8, 2, 64}, nil, "b.z is at 8, want 0"},
	} {
		got, err := iterBTF{offs: tc.offs, sizes: tc.sizes}.displacements(fields, 100)
		if tc.err != "" {
			if err == nil || !errors.Is(err, errBTF) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want errBTF with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, %v, want %v", tc.name, got, err, tc.want)
		}
	}
}

// parseBTF is indexBTF requiring every type of want (tests).
func parseBTF(b []byte, want ...btfName) (*btfTypes, error) {
	t, err := indexBTF(b, want...)
	if err != nil {
		return nil, err
	}
	if err := allFound(want, t.found); err != nil {
		return nil, err
	}
	return t, nil
}

// find returns the ids of the types of this kind with these names, in
// one pass over an indexed blob; each name must name exactly one type.
func (t *btfTypes) find(kind uint32, names ...string) ([]uint32, error) {
	want := make([]btfName, len(names))
	for i, n := range names {
		want[i] = btfName{kind, n}
	}
	ids := make([]uint32, len(names))
	prefixes := wantPrefixes(want)
	for i := range t.n {
		off := t.offset(uint32(i + 1))
		if k := (t.u32(t.types[off+4:]) >> 24) & 0x1f; k == kind {
			if err := t.match(want, prefixes, ids, k, off, uint32(i+1)); err != nil {
				return nil, err
			}
		}
	}
	if err := allFound(want, ids); err != nil {
		return nil, err
	}
	return ids, nil
}

func allFound(want []btfName, found []uint32) error {
	for j, id := range found {
		if id == 0 {
			return fmt.Errorf("%w: no type %s", errBTF, want[j].name)
		}
	}
	return nil
}
