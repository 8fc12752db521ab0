"""The queue: qmail-queue and the injection service qmail-queued over queue_writer (the only
code that writes the queue), qmail-qmqpc (mini-qmail's qmail-queue), and the scheduler:
qmail-start, qmail-send, qmail-todo, qmail-clean, with bounces, retries, routing, qmail-send's
log lines and the spawn protocol it speaks to qmail-lspawn and qmail-rspawn."""
