"""Mail in, as the book's chapter 1 draws it: the network entrances (qmail-smtpd with its
smtp_* parts and rcpthosts, qmail-qmtpd, qmail-qmqpd) and local injection (qmail-inject,
sendmail, predate, datemail, mailsubj), plus tcp-env. Each hands the message to qmail-queue
(qmail.queue.queue_client)."""
