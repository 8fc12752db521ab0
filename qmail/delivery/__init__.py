"""Local delivery: qmail-lspawn (finds the user, starts qmail-local as that user, never as
root), qmail-local (.qmail files, Maildir, mbox, programs, forwards) and the helpers a
.qmail line runs (preline, forward, condredirect, bouncesaying, except, dot-forward,
qreceipt, qbiff) or a user runs on a mailbox (maildirmake, maildir2mbox, maildirwatch)."""
