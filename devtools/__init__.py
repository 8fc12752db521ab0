"""devtools: the developer's tools, not shipped (setup.cfg installs ucspi, supervise and
qmail only, and none of those may import this package).

run_demo       what `make run` runs: qmail as you in ./var under svscan
harness        processes and ports for the tests and the benchmarks: started and stopped by
               PID, bounded waits, the process table
ordinary_user  the project as an ordinary user sees it: the user, a copy of the project
               it can read, an interpreter it can run
interpreters   `make test-interpreters`: the runtime's tests on each Python 3.11-3.13 present
"""
