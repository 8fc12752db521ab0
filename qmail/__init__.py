"""qmail: the qmail 1.03 mail transfer agent, in sub-packages drawn as the book's chapter 1
draws qmail (docs/architecture.md):

    mailin/    qmail-smtpd, qmail-qmtpd, qmail-qmqpd, qmail-inject, sendmail: mail in
    queue/     qmail-queue, qmail-queued, qmail-send, qmail-todo, qmail-clean, qmail-start
    delivery/  qmail-lspawn, qmail-local and the .qmail helpers: local delivery
    remote/    qmail-rspawn, qmail-remote, qmail-tcpto, qmail-tcpok: remote delivery
    tools/     qmail-install, qmail-qstat, qmail-qread, qmail-showctl, qmail-newu ...
    config/    the installation root, control files, users/assign
    formats/   addresses, the queue envelope, netstrings
    auth/      the checkpassword interface (checkpw) and checkpassword (docs/pop3.md)
    pop3/      qmail-popup, qmail-pop3d, relay-ctrl-allow, relay-ctrl-check (docs/pop3.md)
    virtual/   qmail-vuser, checkvpw: virtual domains and users (docs/virtual.md)

Room is left for filters/, lists/ and analog/. qmail may import supervise and ucspi;
nothing below imports qmail.
"""
