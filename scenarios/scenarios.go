// Package scenarios holds the evaluation scenarios braid eval ships with, embedded in the
// binary so that an installed braid runs them from any directory (braid eval four-rates).
// Each is a JSON file here; docs/EVALUATION.md describes the format.
package scenarios

import "embed"

// FS holds every *.json scenario of this directory.
//
//go:embed *.json
var FS embed.FS
