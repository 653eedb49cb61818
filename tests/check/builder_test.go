package check

import "github.com/meridiandb/meridian/tests/history"

// hb builds hand-made histories: every op gives its call and return times.
type hb struct{ h history.History }

func (b *hb) add(op history.Op) int {
	op.ID = len(b.h.Ops)
	b.h.Ops = append(b.h.Ops, op)
	return op.ID
}

// app appends ids; first is the acknowledged first version (OK only).
func (b *hb) app(client int, entity string, call, ret int64, out history.Outcome, first uint64, ids ...string) int {
	op := history.Op{Client: client, Kind: history.Append, Entity: entity, Call: call, Return: ret, Outcome: out,
		Input: history.Input{EventIDs: ids}}
	if out == history.OK {
		op.FirstVersion, op.LastVersion = first, first+uint64(len(ids))-1
	}
	return b.add(op)
}

// appExp appends with an expected version.
func (b *hb) appExp(client int, entity string, call, ret int64, out history.Outcome, exp history.Expected, first uint64, ids ...string) int {
	id := b.app(client, entity, call, ret, out, first, ids...)
	b.h.Ops[id].Expected = exp
	if out == history.Failed {
		b.h.Ops[id].Conflict = true
	}
	return id
}

// read is an OK read of the whole stream: ids are at versions 1..n.
func (b *hb) read(client int, entity string, c history.Consistency, call, ret int64, ids ...string) int {
	evs := make([]history.EventRef, len(ids))
	for i, id := range ids {
		evs[i] = history.EventRef{ID: id, Version: uint64(i + 1)}
	}
	return b.add(history.Op{Client: client, Kind: history.Read, Entity: entity, Call: call, Return: ret, Outcome: history.OK,
		Input: history.Input{Consistency: c}, Result: history.Result{Head: uint64(len(ids)), Events: evs}})
}

// stream makes a final stream of ids at versions 1..n.
func mkStream(ids ...string) []history.EventRef {
	evs := make([]history.EventRef, len(ids))
	for i, id := range ids {
		evs[i] = history.EventRef{ID: id, Version: uint64(i + 1)}
	}
	return evs
}

func exact(v uint64) history.Expected {
	return history.Expected{Kind: history.ExpectExact, Version: v}
}
