"""Remote delivery: qmail-rspawn starts qmail-remote for each remote recipient; qmail-tcpok
and qmail-tcpto manage the record of unreachable hosts."""
