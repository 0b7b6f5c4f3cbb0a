package iceberg

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/sluice-dev/sluice/warehouse"
)

// The maintenance policy's defaults. Only the retention is configurable
// (Options.Maintenance); the rest are fixed so that one Maintain call,
// which runs between two commits of a sync, stays short.
const (
	// DefaultRetention is how long a snapshot stays readable (time
	// travel) after a newer one replaced it.
	DefaultRetention = 24 * time.Hour
	// TargetFileSize is the size compaction writes data files at.
	TargetFileSize int64 = 128 << 20
	// SmallFileSize is the size under which a data file is small: a
	// quarter of TargetFileSize.
	SmallFileSize = TargetFileSize / 4
	// MinSmallFiles is how many small files of a partition make
	// compaction due (bin-packing fewer is not worth a snapshot).
	MinSmallFiles = 10
	// DeleteFilesThreshold is the number of delete files applying to a
	// data file that makes their merge due: the position deletes naming
	// that file alone are merged into one delete file (cost: the
	// deletes); delete files that also apply to other data files make the
	// rewrite of the data file due (cost: the data).
	DeleteFilesThreshold = 5
	// DeleteRatioThreshold is the fraction of a data file's rows deleted
	// by position deletes that makes its rewrite due, whatever its size.
	DeleteRatioThreshold = 0.2
	// MaxRewriteBytes caps the data and delete files read and rewritten
	// by one Maintain call, so that it never stalls a change stream for
	// long (about 5 s on 2 loaded cores at the 26 MiB/s measured by
	// BenchmarkCompact -compact-wide); what is left is done by the next
	// calls, and the report says Pending. One target-size bin fits.
	MaxRewriteBytes int64 = TargetFileSize
	// MaxSnapshots caps the snapshots a table keeps, whatever the
	// retention: every commit rewrites the table's metadata file, which
	// lists them all (about 760 bytes each), so a sync committing every
	// second would otherwise write a 64 MiB metadata file per commit
	// after a day. Expiry runs once a tenth more have gathered.
	MaxSnapshots = 1000
	// OrphanAge is how old a file no snapshot lists must be before it is
	// removed as an orphan: longer than any commit takes from writing its
	// first file to the catalog commit, so that a commit in flight in
	// another process never loses its files.
	OrphanAge = time.Hour
	// planInterval is how long a compaction plan that found nothing due
	// stands, unless MinSmallFiles files were added since: planning reads
	// every manifest (about 1 ms each), too much after every commit of a
	// change stream.
	planInterval = time.Minute
	// maxExpirySlack bounds how long past the retention a snapshot waits
	// for its expiry: expiry is batched (at most one expiry commit per
	// slack), not a commit after every sync commit.
	maxExpirySlack = time.Hour
	// tinyFileDivisor: data files under SmallFileSize/tinyFileDivisor
	// (512 KiB by default) are always bin-packed when compaction is due;
	// bigger small files (earlier compaction outputs) only once the
	// smaller files packed with them add up to about their size, so a row
	// is rewritten about log2(SmallFileSize/commit size) times, not once
	// per compaction.
	tinyFileDivisor = 64
)

// policy is the maintenance policy in effect: the defaults above, the
// retention from Options.Maintenance; tests shrink the sizes.
type policy struct {
	retention     time.Duration
	maxSnapshots  int
	target, small int64
	minSmall      int
	deleteFiles   int
	deleteRatio   float64
	maxRewrite    int64
	orphanAge     time.Duration
	planInterval  time.Duration
}

func defaultPolicy(mp MaintenancePolicy) policy {
	p := policy{
		retention:    mp.Retention,
		maxSnapshots: MaxSnapshots,
		target:       TargetFileSize,
		small:        SmallFileSize,
		minSmall:     MinSmallFiles,
		deleteFiles:  DeleteFilesThreshold,
		deleteRatio:  DeleteRatioThreshold,
		maxRewrite:   MaxRewriteBytes,
		orphanAge:    OrphanAge,
		planInterval: planInterval,
	}
	if p.retention <= 0 {
		p.retention = DefaultRetention
	}
	return p
}

var _ warehouse.Maintainer = (*Table)(nil)

// Maintain does what the maintenance policy says is due, each as its own
// commit under the table's writer lock: compaction (bin-packing small
// data files into files near TargetFileSize, rewriting data files with
// DeleteRatioThreshold of their rows deleted, merging a data file's many
// position delete files into one, dropping delete files that apply to
// nothing),
// at most MaxRewriteBytes per call; expiry of the snapshots older than
// the retention, and removal of the files only they listed; and, after
// either, removal of orphan files older than OrphanAge. Every compaction
// snapshot carries the sluice.* summary properties (the position) of the
// snapshot it follows, so the position never changes. A table never
// committed to has nothing to maintain.
func (t *Table) Maintain(ctx context.Context) (warehouse.MaintenanceReport, error) {
	return t.maintain(ctx, defaultPolicy(t.w.maint))
}

func (t *Table) maintain(ctx context.Context, p policy) (warehouse.MaintenanceReport, error) {
	var rep warehouse.MaintenanceReport
	if t.tbl == nil {
		return rep, ctx.Err()
	}
	unlock, err := t.w.lockTable(ctx, t.ident[1])
	if err != nil {
		return rep, fmt.Errorf("iceberg table %s: maintenance: taking the writer lock: %w", t.name(), err)
	}
	defer unlock()
	// Another process may have committed before the lock was ours.
	tbl, err := t.w.cat.LoadTable(ctx, t.ident)
	if err != nil {
		return rep, fmt.Errorf("iceberg table %s: maintenance: %w", t.name(), err)
	}
	if err := t.load(tbl); err != nil {
		return rep, err
	}

	committed := false
	if err := t.compact(ctx, p, &rep); err != nil {
		return rep, err
	}
	committed = !rep.Empty()
	n := rep
	if err := t.expire(ctx, p, &rep); err != nil {
		return rep, err
	}
	committed = committed || rep != n
	if committed {
		// A maintenance commit is as good a moment as the start of
		// sluice to sweep what failed commits left behind.
		removed, err := t.removeOrphans(ctx, p.orphanAge)
		rep.RemovedFiles += removed
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// sluiceProperties are the sluice.* summary properties of the newest
// snapshot in the current ancestry that has any: what a maintenance
// snapshot carries forward, so the position (and anything else a sync
// records there) stays that of the newest snapshot.
func sluiceProperties(md table.Metadata) iceberggo.Properties {
	for s := md.CurrentSnapshot(); s != nil; {
		if s.Summary != nil {
			props := iceberggo.Properties{}
			for k, v := range s.Summary.Properties {
				if strings.HasPrefix(k, "sluice.") {
					props[k] = v
				}
			}
			if len(props) > 0 {
				return props
			}
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return nil
}

// compactionPlan is what one call compacts.
type compactionPlan struct {
	groups []table.CompactionTaskGroup
	// consolidations merge a data file's own delete files.
	consolidations []consolidation
	// rewritten holds the paths of the data files the groups replace.
	rewritten map[string]struct{}
	// gone holds the data files delete files name that the table no
	// longer lists: those deletes apply to nothing.
	gone    map[string]struct{}
	pending bool
}

// filePathFieldID is the field id of a position delete file's file_path.
var filePathFieldID = func() int {
	f, _ := iceberggo.PositionalDeleteSchema.FindFieldByName("file_path")
	return f.ID
}()

// deleteTarget is the one data file a position delete file applies to,
// or "" when it may apply to several (partition-scoped).
func deleteTarget(d iceberggo.DataFile) string {
	if d.ContentType() != iceberggo.EntryContentPosDeletes {
		return ""
	}
	if ref := d.ReferencedDataFile(); ref != nil && *ref != "" {
		return *ref
	}
	lo, hi := d.LowerBoundValues()[filePathFieldID], d.UpperBoundValues()[filePathFieldID]
	if len(lo) == 0 || string(lo) != string(hi) {
		return ""
	}
	// A string bound is its UTF-8 bytes.
	return string(lo)
}

// deleteCounts splits a data file's position delete files into those
// applying to it alone (file-scoped) and the others (partition-scoped),
// and sums the rows the file-scoped ones and deletion vectors delete.
// Equality deletes (which sluice never writes) are not counted: this
// compaction does not remove them, so counting them would make the same
// rewrite due again at every call.
func deleteCounts(t table.FileScanTask) (fileScoped []iceberggo.DataFile, others int, deletedRows int64) {
	for _, d := range t.DeleteFiles {
		if deleteTarget(d) == t.File.FilePath() {
			fileScoped = append(fileScoped, d)
			deletedRows += d.Count()
		} else {
			others++
		}
	}
	for _, d := range t.DeletionVectorFiles {
		deletedRows += d.Count()
	}
	return fileScoped, others, deletedRows
}

// rewriteDue says whether a data file's deletes make its rewrite due:
// DeleteRatioThreshold of its rows deleted, or DeleteFilesThreshold delete
// files that also apply to other data files (which only a rewrite of all
// of them removes).
func (p policy) rewriteDue(t table.FileScanTask) bool {
	_, others, deleted := deleteCounts(t)
	if others >= p.deleteFiles {
		return true
	}
	rows := t.File.Count()
	return rows > 0 && float64(min(deleted, rows))/float64(rows) >= p.deleteRatio
}

func partitionKey(f iceberggo.DataFile) string {
	part := f.Partition()
	ids := slices.Sorted(maps.Keys(part))
	var b strings.Builder
	fmt.Fprintf(&b, "%d", f.SpecID())
	for _, id := range ids {
		fmt.Fprintf(&b, "/%d=%v", id, part[id])
	}
	return b.String()
}

// nothingDue remembers, per table location, when planning last found no
// compaction due and how many files the table had then (planInterval).
// It lives beside the Table, not in it, so that a table opened again
// keeps it.
var nothingDue sync.Map // string → plannedState

type plannedState struct {
	at    time.Time
	files int
}

// planCompaction picks the data files to rewrite. Per partition: every
// delete-heavy file, and, once MinSmallFiles small files wait, the small
// files (size-tiered: see tinyFileDivisor), bin-packed into groups of at
// most the target size, taken in order until MaxRewriteBytes.
func planCompaction(ctx context.Context, tbl *table.Table, p policy) (compactionPlan, error) {
	plan := compactionPlan{rewritten: map[string]struct{}{}, gone: map[string]struct{}{}}
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return plan, nil
	}
	// The summary's totals rule out most calls without reading a manifest.
	total := -1
	if snap.Summary != nil {
		files, err1 := strconv.Atoi(snap.Summary.Properties["total-data-files"])
		deletes, err2 := strconv.Atoi(snap.Summary.Properties["total-delete-files"])
		if err1 == nil && err2 == nil {
			if deletes == 0 && files < max(p.minSmall, 2) {
				return plan, nil
			}
			total = files + deletes
		}
	}
	loc := tbl.Location()
	if v, ok := nothingDue.Load(loc); ok && total >= 0 {
		last := v.(plannedState)
		if time.Since(last.at) < p.planInterval && total >= last.files && total-last.files < p.minSmall {
			return plan, nil
		}
	}
	nothingDue.Delete(loc)
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return plan, err
	}
	done := false
	defer func() {
		if done && total >= 0 && len(plan.groups) == 0 && len(plan.consolidations) == 0 && len(plan.gone) == 0 {
			nothingDue.Store(loc, plannedState{at: time.Now(), files: total})
		}
	}()
	live := make(map[string]struct{}, len(tasks))
	var keys []string
	byPart := map[string][]table.FileScanTask{}
	for _, t := range tasks {
		live[t.File.FilePath()] = struct{}{}
		k := partitionKey(t.File)
		if _, ok := byPart[k]; !ok {
			keys = append(keys, k)
		}
		byPart[k] = append(byPart[k], t)
	}
	var bins []table.CompactionTaskGroup
	for _, k := range keys {
		var picked, small []table.FileScanTask
		for _, t := range byPart[k] {
			switch {
			case p.rewriteDue(t):
				picked = append(picked, t)
			case t.File.FileSizeBytes() < p.small:
				small = append(small, t)
			}
		}
		slices.SortStableFunc(small, bySize)
		var tier []table.FileScanTask
		var sum int64
		for _, t := range small {
			size := t.File.FileSizeBytes()
			// A quarter over the sum keeps files of about the same size
			// (each commit's) together.
			if len(tier) > 0 && size > p.small/tinyFileDivisor && size > sum+sum/4 {
				break
			}
			tier = append(tier, t)
			sum += size
		}
		if len(tier) >= p.minSmall {
			picked = append(picked, tier...)
		}
		slices.SortStableFunc(picked, bySize)
		// Next-fit bins of at most the target size.
		var cur table.CompactionTaskGroup
		flush := func() {
			// A lone file without deletes would be rewritten as it is.
			if len(cur.Tasks) > 1 || len(cur.Tasks) == 1 && p.rewriteDue(cur.Tasks[0]) {
				bins = append(bins, cur)
			}
			cur = table.CompactionTaskGroup{PartitionKey: k}
		}
		cur.PartitionKey = k
		for _, t := range picked {
			size := t.File.FileSizeBytes()
			if len(cur.Tasks) > 0 && cur.TotalSizeBytes+size > p.target {
				flush()
			}
			cur.Tasks = append(cur.Tasks, t)
			cur.TotalSizeBytes += size
		}
		flush()
	}
	var budget int64
	for _, g := range bins {
		if len(plan.groups) > 0 && budget+g.TotalSizeBytes > p.maxRewrite {
			plan.pending = true
			continue
		}
		budget += g.TotalSizeBytes
		plan.groups = append(plan.groups, g)
		for _, t := range g.Tasks {
			plan.rewritten[t.File.FilePath()] = struct{}{}
		}
	}
	// Data files not rewritten whose own delete files are many get them
	// merged into one.
	for _, t := range tasks {
		if _, ok := plan.rewritten[t.File.FilePath()]; ok {
			continue
		}
		own, _, _ := deleteCounts(t)
		if len(own) < p.deleteFiles || !consolidatable(t.File) {
			continue
		}
		c := consolidation{target: t.File, deletes: own}
		for _, d := range own {
			c.bytes += d.FileSizeBytes()
		}
		if budget > 0 && budget+c.bytes > p.maxRewrite {
			plan.pending = true
			continue
		}
		budget += c.bytes
		plan.consolidations = append(plan.consolidations, c)
	}
	// Delete files whose data file is gone (an overwrite, a rewrite by
	// another engine) apply to nothing; scan planning never attaches them
	// to a task, so they are found in the delete manifests.
	if snap.Summary == nil || snap.Summary.Properties["total-delete-files"] != "0" {
		fs, err := tbl.FS(ctx)
		if err != nil {
			return plan, err
		}
		mans, err := snap.Manifests(fs)
		if err != nil {
			return plan, err
		}
		for _, m := range mans {
			if m.ManifestContent() != iceberggo.ManifestContentDeletes {
				continue
			}
			for e, err := range m.Entries(fs, true) {
				if err != nil {
					return plan, err
				}
				if target := deleteTarget(e.DataFile()); target != "" {
					if _, ok := live[target]; !ok {
						plan.gone[target] = struct{}{}
					}
				}
			}
		}
	}
	done = true
	return plan, nil
}

// compact lands one compaction snapshot if any is due.
func (t *Table) compact(ctx context.Context, p policy, rep *warehouse.MaintenanceReport) error {
	tbl := t.tbl
	plan, err := planCompaction(ctx, tbl, p)
	if err != nil {
		return fmt.Errorf("iceberg table %s: planning compaction: %w", t.name(), err)
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return fmt.Errorf("iceberg table %s: compaction: %w", t.name(), err)
	}
	// The delete files that apply to nothing once the groups are
	// rewritten: those naming only rewritten or gone data files, and
	// partition-scoped ones with no data file left to apply to.
	// (iceberg-go's own RewriteDataFiles drops every position delete of a
	// rewritten file, even one that also applies to a file it does not
	// rewrite; hence this re-check over the whole snapshot.)
	deadSet := make(map[string]struct{}, len(plan.rewritten)+len(plan.gone))
	maps.Copy(deadSet, plan.rewritten)
	maps.Copy(deadSet, plan.gone)
	var dead []iceberggo.DataFile
	if len(plan.groups) > 0 || len(plan.gone) > 0 {
		dead, err = table.CollectDeadPositionDeletes(ctx, fs, tbl.CurrentSnapshot(), deadSet)
		if err != nil {
			return fmt.Errorf("iceberg table %s: compaction: finding the delete files that apply to nothing: %w", t.name(), err)
		}
	}
	if len(plan.groups) == 0 && len(dead) == 0 && len(plan.consolidations) == 0 {
		return nil
	}

	txn := tbl.NewTransaction()
	rw := txn.NewRewrite(sluiceProperties(tbl.Metadata()))
	var written []iceberggo.DataFile
	// On failure, the files written so far are listed by no snapshot:
	// remove them now rather than leave them to the orphan sweep.
	cleanup := func(cause error) error {
		for _, f := range written {
			if err := fs.Remove(f.FilePath()); err != nil && !errors.Is(err, iofs.ErrNotExist) {
				cause = errors.Join(cause, fmt.Errorf("removing the unused compaction output %s: %w", f.FilePath(), err))
			}
		}
		return fmt.Errorf("iceberg table %s: compaction: %w", t.name(), cause)
	}
	compacted := 0
	for _, g := range plan.groups {
		if err := ctx.Err(); err != nil {
			return cleanup(err)
		}
		// One reader, small batches and row groups bound the memory
		// (BenchmarkCompact: a 180 MiB peak heap instead of 510 MiB for
		// 52 MiB of input), at no cost in speed on 2 cores.
		gr, err := table.ExecuteCompactionGroup(ctx, tbl, g,
			table.WithCompactionTargetFileSize(p.target),
			table.WithCompactionScanConcurrency(1),
			table.WithCompactionArrowBatchSize(8192),
			table.WithCompactionRecordBatchBufferSize(4),
			table.WithCompactionParquetRowGroupLimit(131072))
		written = append(written, gr.NewDataFiles...)
		if err != nil {
			return cleanup(err)
		}
		// Position deletes are removed below, after the re-check;
		// deletion vectors belong to one data file each.
		gr.SafePosDeletes = nil
		rw.ApplyResult(gr)
		compacted += len(gr.OldDataFiles) + len(gr.SafeDeletionVectors)
	}
	// A delete file is removed once: as dead or as consolidated.
	removed := map[string]struct{}{}
	for _, d := range dead {
		rw.DeleteFile(d)
		removed[d.FilePath()] = struct{}{}
	}
	compacted += len(dead)
	var consolidated []iceberggo.DataFile
	for _, c := range plan.consolidations {
		if err := ctx.Err(); err != nil {
			return cleanup(err)
		}
		nd, err := writeConsolidated(ctx, tbl, fs, c)
		if err != nil {
			return cleanup(fmt.Errorf("merging the delete files of %s: %w", c.target.FilePath(), err))
		}
		written = append(written, nd)
		consolidated = append(consolidated, nd)
		for _, d := range c.deletes {
			if _, ok := removed[d.FilePath()]; !ok {
				rw.DeleteFile(d)
				removed[d.FilePath()] = struct{}{}
				compacted++
			}
		}
		rw.AddDeleteFile(nd)
	}
	if err := rw.Commit(ctx); err != nil {
		return cleanup(err)
	}
	committed, err := txn.Commit(ctx)
	if err != nil {
		if committed == nil {
			// Whether the catalog took the commit may be unknown: the
			// new files are left to the orphan sweep, which checks.
			return fmt.Errorf("iceberg table %s: compaction commit (the next maintenance removes what it wrote if the commit did not land): %w", t.name(), err)
		}
		// The catalog took the commit; a post-commit step failed.
		err = fmt.Errorf("iceberg table %s: compaction committed, then: %w", t.name(), err)
	}
	rep.Compacted += compacted
	rep.Written += len(written) - len(consolidated)
	rep.Pending = rep.Pending || plan.pending
	if lerr := t.load(committed); lerr != nil {
		return lerr
	}
	return err
}

// expirySlack is how long past the retention a snapshot may wait for
// expiry, so that expiry commits are batched.
func expirySlack(retention time.Duration) time.Duration {
	return min(retention/10, maxExpirySlack)
}

// expire expires the snapshots older than the retention, if the oldest
// is older than the retention and the slack, and those beyond the newest
// MaxSnapshots, and removes the files only they listed. The current snapshot, and every snapshot from it back to
// the newest one carrying a position, are kept whatever their age, so
// that opening the table always finds the position.
func (t *Table) expire(ctx context.Context, p policy, rep *warehouse.MaintenanceReport) error {
	pre := t.tbl
	md := pre.Metadata()
	cur := md.CurrentSnapshot()
	if cur == nil {
		return nil
	}
	keep := 1
	for s := cur; s != nil; keep++ {
		if s.Summary != nil {
			if _, ok := s.Summary.Properties[PositionProperty]; ok {
				break
			}
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	now := time.Now()
	maxAge := p.retention
	lookup := func(id int64) *table.Snapshot { return md.SnapshotByID(id) }
	ancestors := table.AncestorsOf(cur.SnapshotID, lookup)
	// Past MaxSnapshots (and a tenth more, to batch), the snapshots
	// beyond the newest MaxSnapshots go whatever their age.
	countDue := len(md.Snapshots()) > p.maxSnapshots+p.maxSnapshots/10 && len(ancestors) > max(p.maxSnapshots, keep)
	retainLast := keep
	if countDue {
		// iceberg-go keeps the newest retainLast ancestors and those
		// younger than maxAge.
		retainLast, maxAge = max(p.maxSnapshots, keep), 0
	}
	kept := map[int64]struct{}{}
	cutoff := now.Add(-maxAge).UnixMilli()
	for i, s := range ancestors {
		if i >= retainLast && s.TimestampMs < cutoff {
			break
		}
		kept[s.SnapshotID] = struct{}{}
	}
	due := now.Add(-p.retention - expirySlack(p.retention)).UnixMilli()
	isDue := false
	for _, s := range md.Snapshots() {
		if _, ok := kept[s.SnapshotID]; !ok && (countDue || s.TimestampMs < due) {
			isDue = true
			break
		}
	}
	if !isDue {
		return nil
	}
	txn := pre.NewTransaction()
	// Files are removed here, not by iceberg-go's post-commit step, to
	// count them and report a failure.
	if err := txn.ExpireSnapshots(table.WithOlderThan(maxAge), table.WithRetainLast(retainLast), table.WithPostCommit(false)); err != nil {
		return fmt.Errorf("iceberg table %s: expiring snapshots: %w", t.name(), err)
	}
	post, err := txn.Commit(ctx)
	if err != nil {
		return fmt.Errorf("iceberg table %s: expiring snapshots: %w", t.name(), err)
	}
	if err := t.load(post); err != nil {
		return err
	}
	rep.ExpiredSnapshots += len(md.Snapshots()) - len(post.Metadata().Snapshots())
	fs, err := pre.FS(ctx)
	if err != nil {
		return fmt.Errorf("iceberg table %s: removing the files of expired snapshots: %w", t.name(), err)
	}
	files, err := expiredFiles(fs, pre.Metadata(), post.Metadata())
	if err != nil {
		return fmt.Errorf("iceberg table %s: finding the files of expired snapshots (the next maintenance removes them as orphans): %w", t.name(), err)
	}
	for _, f := range files {
		if err := fs.Remove(f); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("iceberg table %s: removing %s of an expired snapshot (the next maintenance removes it as an orphan): %w", t.name(), f, err)
		}
		rep.RemovedFiles++
	}
	return nil
}

// expiredFiles lists the files the snapshots of pre that post no longer
// has listed and no snapshot of post lists: their manifest lists, their
// manifests that no kept snapshot shares, and the data and delete files
// of those manifests that no kept manifest lists as live.
func expiredFiles(fs iceio.IO, pre, post table.Metadata) ([]string, error) {
	keptSnaps := map[int64]struct{}{}
	keptManifests := map[string]iceberggo.ManifestFile{}
	for _, s := range post.Snapshots() {
		keptSnaps[s.SnapshotID] = struct{}{}
		mans, err := s.Manifests(fs)
		if err != nil {
			return nil, err
		}
		for _, m := range mans {
			keptManifests[m.FilePath()] = m
		}
	}
	gone := map[string]struct{}{}
	seen := map[string]struct{}{}
	for _, s := range pre.Snapshots() {
		if _, ok := keptSnaps[s.SnapshotID]; ok {
			continue
		}
		if s.ManifestList != "" {
			gone[s.ManifestList] = struct{}{}
		}
		mans, err := s.Manifests(fs)
		if err != nil {
			return nil, err
		}
		for _, m := range mans {
			if _, ok := keptManifests[m.FilePath()]; ok {
				continue
			}
			if _, ok := seen[m.FilePath()]; ok {
				continue
			}
			seen[m.FilePath()] = struct{}{}
			gone[m.FilePath()] = struct{}{}
			for e, err := range m.Entries(fs, false) {
				if err != nil {
					return nil, err
				}
				gone[e.DataFile().FilePath()] = struct{}{}
			}
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	for _, m := range keptManifests {
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				return nil, err
			}
			delete(gone, e.DataFile().FilePath())
			if ref := e.DataFile().ReferencedDataFile(); ref != nil {
				delete(gone, *ref)
			}
		}
	}
	return slices.Sorted(maps.Keys(gone)), nil
}
