package fleet

import (
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newSlog gives River (which logs through log/slog) the runner's logger.
// River's routine messages are info; they are kept at debug, where they
// do not drown the runner's own.
func newSlog(l hclog.Logger) *slog.Logger { return slog.New(&hclogHandler{l: l}) }

type hclogHandler struct {
	l     hclog.Logger
	attrs []any
}

func (h *hclogHandler) Enabled(_ context.Context, level slog.Level) bool {
	return h.l.IsDebug() || level >= slog.LevelWarn
}

func (h *hclogHandler) Handle(_ context.Context, rec slog.Record) error {
	args := append([]any(nil), h.attrs...)
	rec.Attrs(func(a slog.Attr) bool {
		args = append(args, a.Key, a.Value.Any())
		return true
	})
	switch {
	case rec.Level >= slog.LevelError:
		h.l.Error(rec.Message, args...)
	case rec.Level >= slog.LevelWarn:
		h.l.Warn(rec.Message, args...)
	default:
		h.l.Debug(rec.Message, args...)
	}
	return nil
}

func (h *hclogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := &hclogHandler{l: h.l, attrs: append([]any(nil), h.attrs...)}
	for _, a := range attrs {
		n.attrs = append(n.attrs, a.Key, a.Value.Any())
	}
	return n
}

func (h *hclogHandler) WithGroup(name string) slog.Handler {
	return &hclogHandler{l: h.l.Named(name), attrs: h.attrs}
}
