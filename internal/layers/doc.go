// Package layers holds no code: its test enforces the import rules of
// DESIGN.md, so that they cannot regress. runner, apply and planner reach
// sources only through the capability interfaces of package providers
// (and the registry there), never a concrete provider or a driver.
package layers
