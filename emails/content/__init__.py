"""Content: templates, layouts, their validation, selection, defaults, samples, import and
export, and rendering (pure). See docs/ARCHITECTURE.md."""
