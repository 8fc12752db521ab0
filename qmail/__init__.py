"""qmail: the qmail 1.03 mail transfer agent."""
