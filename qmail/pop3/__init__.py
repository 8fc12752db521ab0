"""POP3: qmail-popup, qmail-pop3d, and the POP-before-SMTP tools (relay-ctrl)."""
