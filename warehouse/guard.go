package warehouse

import "context"

type guardKey struct{}

// WithCommitGuard returns ctx whose commits call guard as late as they
// can: right before the step that makes the commit visible (PostgreSQL's
// COMMIT, the Iceberg catalog's compare-and-swap, the Parquet manifest's
// rename). A guard error abandons the commit. A fleet's runner guards its
// commits with its claim, so that a runner stopped (or cut off) after its
// last check commits nothing once another took its work over.
func WithCommitGuard(ctx context.Context, guard func(context.Context) error) context.Context {
	return context.WithValue(ctx, guardKey{}, guard)
}

// CheckCommitGuard runs ctx's commit guard, if any. Warehouses call it
// just before their commit point.
func CheckCommitGuard(ctx context.Context) error {
	if g, ok := ctx.Value(guardKey{}).(func(context.Context) error); ok && g != nil {
		return g(ctx)
	}
	return nil
}
