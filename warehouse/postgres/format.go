package postgres

// Binary reports whether the transaction copies its rows in PostgreSQL's
// binary COPY format, which it does when every column has a binary
// writer; the text format otherwise. It is known once Begin returns.
func (tx *Tx) Binary() bool { return tx.binary }
