package records

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBatchAppendAndReset(t *testing.T) {
	text := ParquetType{Physical: PhysicalByteArray, Logical: LogicalString}
	s := &Schema{
		Columns: []Column{
			{Name: "id", Type: ParquetType{Physical: PhysicalInt64}},
			{Name: "name", Type: text, Nullable: true},
			{Name: "tags", Type: ParquetType{Physical: PhysicalGroup, Logical: LogicalList, Element: &text}, Nullable: true},
		},
		PrimaryKey: []string{"id"},
	}
	b := NewBatch(s, 4)
	id, name, tags := &b.Cols[0], &b.Cols[1], &b.Cols[2]
	id.AppendInt64(1)
	name.AppendString("ä")
	tags.List.Elem.AppendString("a")
	tags.List.Elem.AppendNull()
	tags.EndList()
	id.AppendInt64(2)
	name.AppendNull()
	tags.AppendNull()
	id.AppendInt64(3)
	name.AppendBytes([]byte{})
	tags.EndList() // an empty list, not a null one
	b.N = 3

	type row struct {
		ID   int64
		Name *string
		Tags []string
		Null bool
	}
	var got []row
	for i := 0; i < b.N; i++ {
		r := row{ID: id.I64[i], Null: tags.IsNull(i)}
		if !name.IsNull(i) {
			n := string(name.Bytes(i))
			r.Name = &n
		}
		for j := tags.List.Offsets[i]; j < tags.List.Offsets[i+1]; j++ {
			e := tags.List.Elem.Bytes(int(j))
			if e == nil {
				r.Tags = append(r.Tags, "<null>")
			} else {
				r.Tags = append(r.Tags, string(e))
			}
		}
		got = append(got, r)
	}
	str := func(s string) *string { return &s }
	want := []row{{1, str("ä"), []string{"a", "<null>"}, false}, {2, nil, nil, true}, {3, str(""), nil, false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if idx, err := s.KeyIndexes(); err != nil || !cmp.Equal(idx, []int{0}) {
		t.Errorf("KeyIndexes = %v, %v", idx, err)
	}
	b.Reset()
	if b.N != 0 || id.Len() != 0 || name.Len() != 0 || tags.Len() != 0 || tags.List.Elem.Len() != 0 || name.Valid != nil && len(name.Valid) != 0 {
		t.Errorf("Reset left values: %d %d %d %d", id.Len(), name.Len(), tags.Len(), tags.List.Elem.Len())
	}
}
