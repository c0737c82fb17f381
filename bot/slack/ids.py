"""Action ids shared by the Block Kit builders and the handlers."""
