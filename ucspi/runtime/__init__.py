"""The runtime every command of the suite stands on (the bottom layer: imports nothing of ours).

launch          how any program is started: warm (our module's main in this process) or
                exec'd, fork + launch, the child's environment, descriptors and signals,
                the process title, exit-status emulation; the page-level tuning of warm
                children is explained at its top
cpython         the CPython internals launch relies on, in one place, tested loudly
fork_helper     the quiet process that forks a server's children (tcpserver, unixserver,
                qmail-lspawn, qmail-rspawn), and the fallback when it is gone
server_loop     the accept loop of tcpserver and unixserver (-c limit, -v status lines)
privileges      the one way to change uid, gid and groups (djb's prot_gid/prot_uid)
exitcodes       100/111, `prog: fatal: ...` / `prog: usage: ...`, error_str, error_temp
sgetopt         djb-style option parsing
durable         temp file, fsync, rename, fsync the directory; write_all
self_pipe       the wake-up pipe a select loop sees signals through
tcp_environ     the tcp-environ(5) variables (TCPLOCALIP ... PROTO) of a connection
tcp_serve       tcpserver's machinery (options, rules, environment, -v lines, main's halves),
                shared by tcpserver and sslserver
tcp_connect     tcpclient's machinery (host, port, -T, connection attempts, environment),
                shared by tcpclient and sslclient
tls, x509       TLS for sslserver and sslclient: contexts, the relay, UCSPI-TLS, the SSL_*
                variables (docs/ssl.md)
cdb_make, cdb_rules, dns_lookup, remote_info, peer_credentials, children, filters:
                formats and look-ups more than one command shares
console_scripts the lean launchers `make venv` writes (a build step, not a command)
"""
