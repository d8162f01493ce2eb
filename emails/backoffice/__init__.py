"""Backoffice: what people use: the editor's endpoints, versions, import/export views, test
sends, preview links and the designers' pages. See docs/ARCHITECTURE.md."""
