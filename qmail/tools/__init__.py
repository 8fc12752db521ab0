"""The administrator's tools: qmail-install (make setup check + config-fast, the service
directories, boot scripts), qmail-qstat, qmail-qread, qmail-showctl, qmail-newu,
qmail-pw2u, qmail-newmrh, qmail-newrcpt."""
