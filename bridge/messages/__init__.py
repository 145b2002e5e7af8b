"""What the bot says: the French and English message catalogue, rendered to HTML and plain text."""
