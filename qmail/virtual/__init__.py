"""Virtual domains and users in qmail's own terms (docs/virtual.md): the mailbox database
(vdomains), its administrator's command qmail-vuser, and checkvpw, the checkpassword for
virtual users (qmail-popup, qmail-smtpd's AUTH, Dovecot)."""
