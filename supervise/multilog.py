"""multilog: read a sequence of lines from stdin and append selected lines to logs.

Synopsis: multilog script

Each argument of script is one action, carried out in order for every input line
(daemontools 0.76, `man multilog`):

  t          (first action only) prefix each line with `@`, a TAI64N label and a space
  -pattern   deselect the line if pattern matches it (see supervise.multilog_script)
  +pattern   select the line if pattern matches it
  e          print (the first 200 bytes of) each selected line to stderr
  =file      replace file by the first 1000 bytes of each selected line, padded with
             newlines to 1001 bytes
  ssize      maximum size of `current` for the following logs (4096..16777215, 99999)
  nnum       number of log files for the following logs (at least 2, default 10)
  !processor processor for the following logs
  dir        (starting with . or /) append each selected line to the log in dir

A log directory holds `current` (mode 644 while written, 744 once complete), `state`,
`lock` (flock'ed: a second multilog on the same log is refused), and old logs
`@<tai64n>.s` (complete, processed) or `.u` (unfinished when an outage happened).
When `current` reaches size (or a newline within 2000 bytes of it), or on SIGALRM, it
is fsynced, set to 744 and renamed `previous`; a processor then runs under `sh -c` in
the log directory, stdin = previous, stdout = processed, fd 4 = state, fd 5 = newstate,
and its output becomes the old log; beyond num-1 old logs the oldest is removed.
Only the first 1000 bytes of a line are matched, timestamped or saved in status files;
the rest of a longer line is still logged. Input is read in C multilog's 1024-byte
steps and written in its 512-byte steps, so logs rotate at the same bytes.

Trouble writing to disk after the start is reported as
`multilog: warning: unable to ..., pausing: reason` and retried each second; no data is
lost. SIGTERM: finish the current line, then exit, leaving stdin at the first byte not
processed.

Exit codes: 0 at the end of stdin (a partial final line gets a newline); 111 before
reading any input when a log or status file cannot be opened or a log is locked.
Environment: passed on to processors.
"""

import errno
import fcntl
import os
import select
import signal
import sys
import time

from supervise import multilog_script as script_lang
from supervise import tai64
from ucspi.runtime import exitcodes, self_pipe, launch

PROG = "multilog"
PAUSE = 1.0  # seconds between retries when the disk gives trouble
INPUT_STEP = 1024  # C multilog's input buffer: where it flushes its logs
OUTPUT_STEP = 512  # C multilog's per-log output buffer
LINE_LIMIT = 1000  # bytes of a line that are matched and kept for status files
ALERT_LIMIT = 200
STATUS_SIZE = 1001
NEAR_END = 2000  # a newline this close to the size limit ends the file
READ_SIZE = 65536

O_READ = os.O_RDONLY | os.O_NONBLOCK
O_APPEND = os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND | os.O_CREAT
O_TRUNC = os.O_WRONLY | os.O_NONBLOCK | os.O_TRUNC | os.O_CREAT
O_WRITE = os.O_WRONLY | os.O_NONBLOCK


def pause(what: str, err: BaseException | int | None) -> None:
    """Report trouble as `multilog: warning: what, pausing: reason`, then wait."""
    if err is None:
        exitcodes.warn(PROG, f"{what}, pausing")
    else:
        exitcodes.say(f"{PROG}: warning: {what}, pausing: {exitcodes.error_str(err)}")
    time.sleep(PAUSE)


def persist(what: str, operation, *args, **kw):
    """operation(*args, **kw), retried after a pause until it works."""
    while True:
        try:
            return operation(*args, **kw)
        except OSError as err:
            pause(what, err)


def die(what: str, err: OSError):
    exitcodes.fatal_sys(PROG, what, err)


def open_status_files(script: list[bytes], startdir: int) -> dict[int, int]:
    """Descriptors of the `=file` status files, by action index."""
    fds = {}
    for i, action in enumerate(script):
        if action[:1] != b"=":
            continue
        name = action[1:]
        text = os.fsdecode(name)
        try:
            os.close(os.open(name, O_APPEND, 0o600, dir_fd=startdir))
        except OSError as err:
            die(f"unable to create {text}", err)
        try:
            fds[i] = os.open(name, O_WRITE, dir_fd=startdir)
        except OSError as err:
            die(f"unable to write {text}", err)
    return fds


def write_status(fd: int, name: str, line: bytes) -> None:
    """Overwrite a status file with line padded by newlines to 1001 bytes."""
    record = line[:LINE_LIMIT] + b"\n" * (STATUS_SIZE - min(len(line), LINE_LIMIT))
    while True:
        persist(f"unable to move to beginning of {name}", os.lseek, fd, 0, os.SEEK_SET)
        try:
            if os.write(fd, record) == STATUS_SIZE:
                return
            err = None
        except OSError as e:
            err = e
        pause(f"unable to write {name}", err)


def alert(line: bytes) -> None:
    """The `e` action: the line (its first 200 bytes and `...`) on stderr."""
    text = line[:ALERT_LIMIT] + b"...\n" if len(line) > ALERT_LIMIT else line + b"\n"
    try:
        os.write(2, text)
    except OSError:
        pass


def run_processor(processor: bytes, dirfd: int, env=None) -> None:
    """In a forked child: the processor under sh -c in the log directory with
    previous/processed/state/newstate on fds 0/1/4/5. Never returns."""
    try:
        os.fchdir(dirfd)
        for target, name, flags in ((0, "previous", O_READ), (1, "processed", O_TRUNC),
                                    (4, "state", O_READ), (5, "newstate", O_TRUNC)):
            fd = os.open(name, flags, 0o644)
            if fd != target:
                os.dup2(fd, target)
                os.close(fd)
            else:
                os.set_inheritable(fd, True)
        for fd in (0, 1):
            os.set_blocking(fd, True)
        launch.exec_external([b"sh", b"-c", processor], os.environ if env is None else env,
                                "/bin/sh")
    except OSError as err:
        exitcodes.say(f"{PROG}: fatal: unable to run {os.fsdecode(processor)}: "
                      f"{exitcodes.error_str(err)}")
    except BaseException as err:  # whatever happens, this child must not return
        exitcodes.say(f"{PROG}: fatal: unable to run {os.fsdecode(processor)}: {err}")
    os._exit(111)


class Log:
    """One automatically rotated log directory and its 512-byte output buffer."""

    def __init__(self, name: bytes, size: int, num: int, processor: bytes | None):
        self.name = os.fsdecode(name)
        self.path = name
        self.size = size
        self.num = num
        self.processor = processor
        self.pending = bytearray()
        self.bytes = 0
        self.dirfd = -1
        self.current = -1
        self.lockfd = -1

    # -- start: lock, recover from an outage, open current ---------------------------

    def restart(self, startdir: int) -> None:
        try:
            os.mkdir(self.path, 0o700, dir_fd=startdir)
        except OSError:
            pass
        try:
            self.dirfd = os.open(self.path, O_READ | os.O_DIRECTORY, dir_fd=startdir)
        except OSError as err:
            die(f"unable to open directory {self.name}", err)
        try:
            self.lockfd = os.open("lock", O_APPEND, 0o600, dir_fd=self.dirfd)
            fcntl.flock(self.lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as C: flock
        except OSError as err:
            die(f"unable to lock directory {self.name}", err)
        st = self._stat_or_none("current")
        if st is not None and st.st_mode & 0o100:
            # a complete current (744, multilog ended cleanly): go on appending to it
            self._open_current(f"unable to append to {self.name}/current")
            self.bytes = st.st_size
            return
        # an outage may have interrupted anything: keep what can be kept as old logs
        self._unlink("state")
        self._unlink("newstate")
        processed = self._stat_or_none("processed")
        if processed is not None and processed.st_mode & 0o100:
            self._unlink("previous")
            self.finish("processed", "s")
        else:
            self._unlink("processed")
            self.finish("previous", "u")
        self.finish("current", "u")
        try:
            os.close(os.open("state", O_TRUNC, 0o644, dir_fd=self.dirfd))
        except OSError as err:
            die(f"unable to write to {self.name}/state", err)
        self._open_current(f"unable to write to {self.name}/current")
        self.bytes = 0

    def _open_current(self, trouble: str) -> None:
        try:
            self.current = os.open("current", O_APPEND, 0o600, dir_fd=self.dirfd)
        except OSError as err:
            die(trouble, err)
        try:
            os.fchmod(self.current, 0o644)  # 644: being written
        except OSError as err:
            die(f"unable to set mode of {self.name}/current", err)

    def _stat_or_none(self, file: str):
        try:
            return os.stat(file, dir_fd=self.dirfd)
        except FileNotFoundError:
            return None
        except OSError as err:
            die(f"unable to stat {self.name}/{file}", err)

    def _unlink(self, file: str) -> None:
        try:
            os.unlink(file, dir_fd=self.dirfd)
        except OSError:
            pass

    # -- rotation --------------------------------------------------------------------

    def finish(self, file: str, code: str) -> None:
        """Give file its old-log name @<now>.code, then trim the old logs to num-1."""
        while True:
            try:
                st = os.stat(file, dir_fd=self.dirfd)
                break
            except FileNotFoundError:
                return
            except OSError as err:
                pause(f"unable to stat {self.name}/{file}", err)
        if st.st_nlink == 1:
            while True:
                target = tai64.now().decode() + "." + code
                try:
                    os.link(file, target, src_dir_fd=self.dirfd, dst_dir_fd=self.dirfd)
                    break
                except OSError as err:
                    pause(f"unable to link to {self.name}/{target}", err)
        persist(f"unable to remove {self.name}/{file}", os.unlink, file, dir_fd=self.dirfd)
        # the old log's name is on disk before older ones go (C leaves this to the fs)
        persist(f"unable to read {self.name}", os.fsync, self.dirfd)
        while True:
            try:
                if self.files_fit():
                    return
            except OSError as err:
                pause(f"unable to read {self.name}", err)

    def files_fit(self) -> bool:
        """True when fewer than num old logs exist; else remove the oldest, False."""
        names = [os.fsencode(n) for n in os.listdir(self.dirfd)]
        oldest = b"@z"
        count = 0
        for name in names:
            if name[:1] == b"@" and len(name) >= tai64.LABEL_LENGTH:
                count += 1
                if name < oldest:
                    oldest = name[:tai64.LABEL_LENGTH]
        if count < self.num:
            return True
        for name in names:
            if name[:1] == b"@" and len(name) >= tai64.LABEL_LENGTH and name.startswith(oldest):
                try:
                    os.unlink(name, dir_fd=self.dirfd)
                except OSError:
                    pass
                break
        return False

    def full_current(self) -> None:
        """current is complete: make it safe on disk, then turn it into an old log."""
        d = self.name
        persist(f"unable to write {d}/current to disk", os.fsync, self.current)
        os.close(self.current)
        persist(f"unable to rename current to previous in directory {d}", os.rename,
                "current", "previous", src_dir_fd=self.dirfd, dst_dir_fd=self.dirfd)
        self.current = persist(f"unable to create {d}/current", os.open, "current",
                               O_APPEND, 0o600, dir_fd=self.dirfd)
        self.bytes = 0
        persist(f"unable to set mode of {d}/current", os.fchmod, self.current, 0o644)
        persist(f"unable to set mode of {d}/previous", os.chmod, "previous", 0o744,
                dir_fd=self.dirfd)
        if self.processor is None:
            self.finish("previous", "s")
            return
        self._process()
        fd = persist(f"unable to create {d}/processed", os.open, "processed", O_APPEND,
                     0o600, dir_fd=self.dirfd)
        persist(f"unable to write {d}/processed to disk", os.fsync, fd)
        persist(f"unable to set mode of {d}/processed", os.fchmod, fd, 0o744)
        os.close(fd)
        fd = persist(f"unable to create {d}/newstate", os.open, "newstate", O_APPEND,
                     0o600, dir_fd=self.dirfd)
        persist(f"unable to write {d}/newstate to disk", os.fsync, fd)
        os.close(fd)
        persist(f"unable to remove {d}/previous", os.unlink, "previous", dir_fd=self.dirfd)
        persist(f"unable to rename newstate to state in directory {d}", os.rename,
                "newstate", "state", src_dir_fd=self.dirfd, dst_dir_fd=self.dirfd)
        self.finish("processed", "s")

    def _process(self) -> None:
        """Run the processor until it exits 0."""
        while True:
            sys.stderr.flush()
            pid = persist(f"unable to fork for processor in {self.name}", os.fork)
            if pid == 0:
                run_processor(self.processor, self.dirfd)
            try:
                _, status = os.waitpid(pid, 0)
            except OSError as err:
                pause(f"wait failed for processor in {self.name}", err)
            else:
                if os.WIFSIGNALED(status):
                    pause(f"processor crashed in {self.name}", errno.EINTR)  # C's wording
                elif os.WEXITSTATUS(status) == 0:
                    return
            exitcodes.warn(PROG, f"processor failed in {self.name}, pausing")
            time.sleep(PAUSE)

    # -- output ----------------------------------------------------------------------

    def write_some(self, data: bytes) -> int:
        """C's c_write: write a prefix of data to current, rotating when it is full."""
        if self.bytes >= self.size:
            self.full_current()
        n = min(len(data), self.size - self.bytes)
        if self.bytes + n >= self.size - NEAR_END:
            nl = data.rfind(b"\n", 0, n)
            if nl >= 0:
                n = nl + 1  # end the file at a line boundary
        while True:
            try:
                w = os.write(self.current, data[:n])
                if w > 0:
                    break
                err = None
            except OSError as e:
                err = e
            pause(f"unable to write to {self.name}/current", err)
        self.bytes += w
        if self.bytes >= self.size - NEAR_END and data[w - 1] == 10:
            self.full_current()
        return w

    def write_all(self, data: bytes) -> None:
        while data:
            data = data[self.write_some(data):]

    def flush(self) -> None:
        if self.pending:
            data = bytes(self.pending)
            self.pending.clear()
            self.write_all(data)

    def put(self, data: bytes) -> None:
        """buffer_put: data goes into the buffer, or straight out when it is large."""
        if len(data) > OUTPUT_STEP - len(self.pending):
            self.flush()
            if len(data) > OUTPUT_STEP:
                self.write_all(data)
                return
        self.pending += data

    def put_bytes(self, data: bytes) -> None:
        """buffer_PUTC for each byte of data: the buffer is filled, then flushed."""
        pos = 0
        while pos < len(data):
            if len(self.pending) == OUTPUT_STEP:
                self.flush()
            take = OUTPUT_STEP - len(self.pending)
            self.pending += data[pos:pos + take]
            pos += take

    def put_line(self, line: bytes) -> None:
        """put(line), then the newline byte by byte."""
        pending = self.pending
        if len(line) < OUTPUT_STEP - len(pending):
            pending += line + b"\n"  # the common case: both fit, nothing to flush
            return
        if len(line) == OUTPUT_STEP - len(pending):
            pending += line
        else:
            self.put(line)
        if len(pending) == OUTPUT_STEP:
            self.flush()
        pending += b"\n"

    def quit(self) -> None:
        """End of input: everything on disk, current marked complete (744)."""
        self.flush()
        persist(f"unable to write {self.name}/current to disk", os.fsync, self.current)
        persist(f"unable to set mode of {self.name}/current", os.fchmod, self.current, 0o744)


class Input:
    """stdin in C multilog's 1024-byte steps; between steps the logs are flushed and the
    signals' requests (rotate now, exit at the next line boundary) are carried out."""

    def __init__(self, logs: list[Log]):
        self.logs = logs
        self.buffer = b""
        self.at_newline = True  # the last byte read was a newline
        self.exit_asap = False
        self.force_rotate = False
        self.wake_r = -1

    def catch_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGALRM, self._on_alarm)
        self.wake_r, _ = self_pipe.open_wakeup()

    def _on_term(self, signum, frame):
        self.exit_asap = True

    def _on_alarm(self, signum, frame):
        self.force_rotate = True

    def step(self) -> bytes:
        """The next piece of input; b"" at the end (or when told to exit)."""
        while True:
            for log in self.logs:
                log.flush()
            if self.force_rotate:
                self.force_rotate = False
                for log in self.logs:
                    if log.bytes > 0:
                        log.full_current()
            if self.buffer:
                piece, self.buffer = self.buffer[:INPUT_STEP], self.buffer[INPUT_STEP:]
                return piece
            if self.exit_asap and self.at_newline:
                return b""
            try:
                ready, _, _ = select.select([0, self.wake_r], [], [])
                if self.wake_r in ready:
                    self_pipe.drain(self.wake_r)
                    if 0 not in ready:
                        continue
                data = os.read(0, 1 if self.exit_asap else READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                return b""  # as C: a read error ends the input
            if not data:
                return b""
            self.at_newline = data[-1] == 10
            self.buffer = data


def parse_script(script: list[bytes], startdir: int):
    """The actions as tuples, and the logs (opened, locked and recovered), in order."""
    status_fds = open_status_files(script, startdir)
    size, num, processor = script_lang.SIZE_DEFAULT, script_lang.NUM_DEFAULT, None
    actions, logs = [], []
    for i, action in enumerate(script):
        kind = action[:1]
        if kind == b"s":
            size = script_lang.parse_size(action)
        elif kind == b"n":
            num = script_lang.parse_num(action)
        elif kind == b"!":
            processor = action[1:]
        elif kind in (b".", b"/"):
            log = Log(action, size, num, processor)
            log.restart(startdir)
            logs.append(log)
            actions.append(("dir", log))
        elif kind in (b"+", b"-"):
            actions.append((kind.decode(), script_lang.compile_pattern(action[1:])))
        elif kind == b"e":
            actions.append(("e", None))
        elif kind == b"=":
            actions.append(("=", (status_fds[i], os.fsdecode(action[1:]))))
    return actions, logs


def select_logs(actions, line: bytes) -> list[Log]:
    """Carry out the line's actions; the logs it is selected for."""
    selected = True
    chosen = []
    for kind, arg in actions:
        if kind == "dir":
            if selected:
                chosen.append(arg)
        elif kind == "-":
            if selected and script_lang.match(arg, line):
                selected = False
        elif kind == "+":
            if not selected and script_lang.match(arg, line):
                selected = True
        elif kind == "e":
            if selected:
                alert(line)
        elif selected:
            write_status(arg[0], arg[1], line)
    return chosen


def process(actions, logs: list[Log], source: Input, timestamps: bool) -> None:
    """Read lines until the end of input and hand each to its logs."""
    plain = all(kind == "dir" for kind, _ in actions)  # every line goes to every log
    stamp = tai64.stamper()
    room_stamped = LINE_LIMIT - tai64.LABEL_LENGTH - 1
    carry = b""  # the start of a line whose end has not been read
    long_line = None  # logs of a line past 1000 bytes, still reading its end
    while True:
        chunk = source.step()
        if not chunk:
            break
        pos, end = 0, len(chunk)
        while pos < end:
            if long_line is not None:
                nl = chunk.find(b"\n", pos)
                stop = end if nl < 0 else nl
                for log in long_line:
                    log.put_bytes(chunk[pos:stop])
                if nl < 0:
                    break
                for log in long_line:
                    log.put_bytes(b"\n")
                long_line = None
                pos = nl + 1
                continue
            if not carry:
                pos = _short_lines(chunk, pos, actions, logs, plain, stamp if timestamps else None,
                                   room_stamped if timestamps else LINE_LIMIT)
                if pos == end:
                    break
            if not carry and timestamps:
                carry = stamp() + b" "
            room = LINE_LIMIT - len(carry)
            nl = chunk.find(b"\n", pos, pos + room)
            if nl >= 0:
                line = carry + chunk[pos:nl] if carry else chunk[pos:nl]
                carry = b""
                pos = nl + 1
                for log in (logs if plain else select_logs(actions, line)):
                    log.put_line(line)
                continue
            take = min(room, end - pos)
            carry += chunk[pos:pos + take]
            pos += take
            if len(carry) == LINE_LIMIT:
                long_line = logs if plain else select_logs(actions, carry)
                for log in long_line:
                    log.put(carry)
                carry = b""
    # end of input: a partial last line gets its newline
    if long_line is not None:
        for log in long_line:
            log.put_bytes(b"\n")
    elif carry:
        for log in (logs if plain else select_logs(actions, carry)):
            log.put_line(carry)


def _short_lines(chunk: bytes, pos: int, actions, logs, plain: bool, stamp, room: int) -> int:
    """The complete lines from chunk[pos:] on that fit in 1000 bytes, handed to their
    logs (the common case, in one tight loop); returns where the rest begins.

    The lines of one input step (at most 1024 bytes, read together) share one label:
    C takes the clock per line, microseconds apart; the format is the same."""
    parts = chunk[pos:].split(b"\n")
    parts.pop()  # no newline after it: not a complete line
    prefix = stamp() + b" " if stamp else b""
    if plain and len(logs) == 1:
        return pos + _into_one_log(parts, logs[0], prefix, room)
    for part in parts:
        if len(part) > room:
            break
        line = prefix + part if prefix else part
        pos += len(part) + 1
        for log in (logs if plain else select_logs(actions, line)):
            log.put_line(line)
    return pos


def _into_one_log(parts: list[bytes], log, prefix: bytes, room: int) -> int:
    """_short_lines for the common script (one log, no selection): lines that fit in
    the output buffer together are appended in one piece, which is what put_line does
    line by line as long as the buffer does not fill. Returns the input bytes used."""
    used = 0
    extra = len(prefix) + 1
    group_start = 0
    group_bytes = 0
    pending = log.pending
    joiner = b"\n" + prefix
    for i, part in enumerate(parts):
        if len(part) > room:
            parts = parts[:i]
            break
        size = len(part) + extra
        if len(pending) + group_bytes + size > OUTPUT_STEP:
            if i > group_start:
                pending += prefix + joiner.join(parts[group_start:i]) + b"\n"
            log.put_line(prefix + part)  # this one fills the buffer: C's path
            group_start, group_bytes = i + 1, 0
        else:
            group_bytes += size
        used += len(part) + 1
    if len(parts) > group_start:
        pending += prefix + joiner.join(parts[group_start:]) + b"\n"
    return used


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    os.umask(0o022)
    script = [os.fsencode(arg) for arg in argv[1:]]
    try:
        startdir = os.open(".", O_READ | os.O_DIRECTORY)
    except OSError as err:
        die("unable to switch to current directory", err)
    # the requests are noted at once, acted on between reads (C blocks them meanwhile)
    source = Input([])
    source.catch_signals()
    actions, logs = parse_script(script, startdir)
    source.logs = logs
    process(actions, logs, source, script[:1] != [] and script[0][:1] == b"t")
    for log in logs:
        log.quit()
    return 0
