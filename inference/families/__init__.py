"""Model families, one folder each (the layout the project is moving to; see DESIGN.md)."""
