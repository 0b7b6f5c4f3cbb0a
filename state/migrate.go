package state

import "github.com/sluice-dev/sluice/config"

// migrate upgrades a state decoded from an older format version, in
// memory; the next write stores it as FormatVersion. Each step takes one
// version to the next, so a state of any older version passes through all
// of them in order.
func (s *State) migrate() {
	if s.FormatVersion < 2 {
		// Version 1 recorded only the base warehouse name of a cdc table;
		// readers appended the history suffix themselves.
		for _, src := range s.Sources {
			for _, t := range src.Tables {
				if t.Sync == config.SyncCDC && t.CDCOutput.WritesHistory() && t.HistoryTable == "" {
					t.HistoryTable = t.WarehouseTable + config.HistorySuffix
				}
			}
		}
		s.FormatVersion = 2
	}
	if s.FormatVersion < 3 {
		// Version 3 added table settings (query, historical_load and its
		// start, hash, rename, batch_size) whose absence means what
		// version 2 did; an older sluice refuses a version 3 state rather
		// than drop them when it writes.
		s.FormatVersion = 3
	}
}
